/* fault.h — deliberate protocol faults ([fault] in the run configuration), so tests can prove that
 * a receiver refuses a broken message with a clear error instead of trusting or waiting on it. */
#ifndef HAT_FAULT_H
#define HAT_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "net/wire.h"

typedef enum {
    FAULT_NONE = 0, FAULT_TRUNCATED = 1, FAULT_BAD_VERSION = 2, FAULT_TOKEN_IDS = 3, FAULT_BAD_CHECKSUM = 4
} fault_kind;
extern const char *const fault_kind_names[];   /* config spelling, in enum order, NULL-terminated */
const char *fault_kind_name(fault_kind f);

/* Writes header h into msg (its payload of h->payload_bytes already in place), damaged as fault k
 * asks, and returns the bytes to send: bad_version stamps the next protocol version before
 * sealing, truncated_message drops half the payload, bad_checksum flips a payload bit after
 * sealing. token_ids is the caller's: what counts as a forbidden payload depends on the mode. */
size_t fault_seal(fault_kind k, uint8_t *msg, wire_header *h);

#endif
