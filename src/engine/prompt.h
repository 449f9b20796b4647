/* prompt.h — prompts as the testbed takes them: from prompts files and as token ids. One place
 * for `hat run` (devices' prompts), `hat generate` and `hat calibrate`. */
#ifndef HAT_PROMPT_H
#define HAT_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"

/* A prompts file, in one of two formats chosen by the name:
 *   text (any name but *.jsonl): one prompt per non-empty line, trimmed of blanks; a literal \n in
 *     a line stands for a newline (there is no way to write a backslash followed by n);
 *   JSON lines (*.jsonl): one JSON object per non-empty line; its string field "prompt" is the
 *     prompt, verbatim (newlines and any Unicode as JSON escapes); other fields (e.g. "source",
 *     "tokens") are allowed and ignored.
 * Errors: the file cannot be read, holds a NUL byte, or has no prompt; in JSON lines, a line that
 * is not a JSON object, has no "prompt" string, an empty (all-blank) one or more than one, or holds
 * the escape \u0000 (a NUL character), named FILE:LINE:.
 * *size and *crc (CRC-32C of the file's bytes) may be NULL. Free the list with prompt_list_free. */
int prompt_read_file(const char *path, char ***list, int *n, uint64_t *size, uint32_t *crc, char *err,
                     size_t errlen);
void prompt_list_free(char **list, int n);

/* text -> token ids: rendered with the model's chat template when chat (system may be NULL), else
 * raw; a BOS first when the tokenizer asks for one. Special tokens are parsed in chat renderings
 * (they carry the role markers), not in raw text. *ids is malloc'd, *n its length. */
int prompt_tokenize(const tokenizer *tok, const char *system, const char *text, int chat, int32_t **ids, int *n,
                    char *err, size_t errlen);

#endif
