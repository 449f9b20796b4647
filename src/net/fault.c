/* fault.c — see fault.h. */
#include "net/fault.h"

#include <string.h>

const char *const fault_kind_names[] = {"none", "truncated_message", "bad_version", "token_ids", "bad_checksum", NULL};

const char *fault_kind_name(fault_kind f) { return (unsigned)f < 5 ? fault_kind_names[f] : "?"; }

size_t fault_seal(fault_kind k, uint8_t *msg, wire_header *h) {
    if (k == FAULT_BAD_VERSION) h->version = WIRE_VERSION + 1;
    memcpy(msg, h, sizeof *h);
    wire_seal(msg);
    size_t bytes = WIRE_HEADER_BYTES + (size_t)h->payload_bytes;
    if (k == FAULT_TRUNCATED) bytes -= (size_t)h->payload_bytes / 2;
    if (k == FAULT_BAD_CHECKSUM) msg[WIRE_HEADER_BYTES + 1] ^= 0x10;
    return bytes;
}
