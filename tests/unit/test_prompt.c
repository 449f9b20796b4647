/* test_prompt.c — prompt_read_file on both formats: text files (unchanged: trimmed lines, \n
 * escapes, blank lines skipped) and JSON lines (multi-line and Unicode prompts, extra fields and
 * blank lines ignored); broken JSON-lines files rejected with FILE:LINE: and the reason; the size
 * and CRC outputs. */
#define _GNU_SOURCE   /* mkstemps */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/crc32c.h"
#include "engine/prompt.h"
#include "support/testutil.h"
#include "support/tmpfiles.h"

/* a temporary file holding text, its name ending in ext (".txt", ".jsonl") */
static const char *tmp_file(const char *text, const char *ext) { return tmp_file_named("hat_prompt_", text, ext); }

static void test_text(void) {
    const char *text = "first prompt\n\n   \n  second\\nline  \nthird\r\n";
    const char *path = tmp_file(text, ".txt");
    char **list = NULL, err[HAT_ERRLEN] = "";
    int n = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    int rc = prompt_read_file(path, &list, &n, &size, &crc, err, sizeof err);
    EXPECT(rc == HAT_OK && n == 3, "text file: rc %d n %d: %s", rc, n, err);
    if (rc == HAT_OK && n == 3) {
        EXPECT(!strcmp(list[0], "first prompt"), "text [0] '%s'", list[0]);
        EXPECT(!strcmp(list[1], "second\nline"), "text [1] '%s'", list[1]);
        EXPECT(!strcmp(list[2], "third"), "text [2] '%s'", list[2]);
        prompt_list_free(list, n);
    }
    EXPECT(size == strlen(text) && crc == crc32c(0, text, strlen(text)), "text size/crc");
    /* a JSON object in a text file is just text */
    path = tmp_file("{\"prompt\": \"x\"}\n", ".txt");
    rc = prompt_read_file(path, &list, &n, NULL, NULL, err, sizeof err);
    EXPECT(rc == HAT_OK && n == 1 && !strcmp(list[0], "{\"prompt\": \"x\"}"), "json in a text file: %s", err);
    if (rc == HAT_OK) prompt_list_free(list, n);
    rc = prompt_read_file(tmp_file("\n  \n", ".txt"), &list, &n, NULL, NULL, err, sizeof err);
    EXPECT(rc == HAT_ERR_FORMAT && strstr(err, "no prompts"), "empty text file: %s", err);
}

static void test_jsonl_good(void) {
    const char *text =
        "{\"prompt\": \"Summarise:\\n\\nline one\\nline two\", \"source\": \"test\", \"tokens\": 12}\n"
        "\n   \n"
        "{\"tokens\": [1, 2], \"prompt\": \"caf\\u00e9 \xe2\x82\xac \\ud83d\\ude00 and a literal \\\\n\"}\r\n"
        "  {\"prompt\": \"  kept verbatim  \", \"nested\": {\"prompt\": 3}}  \n"
        "{\"prompt\": \"last, no newline at the end\"}";
    const char *path = tmp_file(text, ".jsonl");
    char **list = NULL, err[HAT_ERRLEN] = "";
    int n = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
    int rc = prompt_read_file(path, &list, &n, &size, &crc, err, sizeof err);
    EXPECT(rc == HAT_OK && n == 4, "jsonl: rc %d n %d: %s", rc, n, err);
    if (rc == HAT_OK && n == 4) {
        EXPECT(!strcmp(list[0], "Summarise:\n\nline one\nline two"), "jsonl [0] '%s'", list[0]);
        EXPECT(!strcmp(list[1], "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 and a literal \\n"), "jsonl [1] '%s'", list[1]);
        EXPECT(!strcmp(list[2], "  kept verbatim  "), "jsonl [2] '%s'", list[2]);
        EXPECT(!strcmp(list[3], "last, no newline at the end"), "jsonl [3] '%s'", list[3]);
        prompt_list_free(list, n);
    }
    EXPECT(size == strlen(text) && crc == crc32c(0, text, strlen(text)), "jsonl size/crc");
}

/* a JSON-lines file that must be rejected, the message holding "<path>:<line>:" and needle */
static void expect_bad(const char *label, const char *text, int line, const char *needle) {
    const char *path = tmp_file(text, ".jsonl");
    char **list = NULL, err[HAT_ERRLEN] = "", want[96];
    int n = -1;
    int rc = prompt_read_file(path, &list, &n, NULL, NULL, err, sizeof err);
    EXPECT(rc == HAT_ERR_FORMAT, "%s: rc %d (%s)", label, rc, err);
    if (line) {
        snprintf(want, sizeof want, "%s:%d: ", path, line);
        EXPECT(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", label, err, want);
    }
    EXPECT(strstr(err, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", label, err, needle);
    EXPECT(n == -1 && !list, "%s: outputs set on error", label);
    if (rc == HAT_OK) prompt_list_free(list, n);
}

static void test_jsonl_bad(void) {
    const char *ok = "{\"prompt\": \"fine\"}\n";
    char text[512];
    snprintf(text, sizeof text, "%s\n{\"prompt\": \"unterminated}\n%s", ok, ok);
    expect_bad("broken JSON on line 3", text, 3, "not a JSON object (invalid JSON");
    snprintf(text, sizeof text, "%s{\"prompt\": \"a\"} trailing\n", ok);
    expect_bad("text after the object", text, 2, "not a JSON object");
    expect_bad("an array", "[\"prompt\", \"x\"]\n", 1, "not a JSON object (the line holds an array)");
    expect_bad("a bare string", "\"just text\"\n", 1, "(the line holds a string)");
    expect_bad("plain text", "hello world\n", 1, "not a JSON object");
    snprintf(text, sizeof text, "%s%s{\"text\": \"no prompt here\"}\n", ok, ok);
    expect_bad("missing prompt", text, 3, "no \"prompt\" string field");
    expect_bad("number prompt", "{\"prompt\": 42}\n", 1, "no \"prompt\" string field (\"prompt\" is not a string)");
    expect_bad("null prompt", "{\"prompt\": null}\n", 1, "no \"prompt\" string field");
    expect_bad("object prompt", "{\"prompt\": {\"text\": \"x\"}}\n", 1, "no \"prompt\" string field");
    expect_bad("case matters", "{\"Prompt\": \"x\"}\n", 1, "no \"prompt\" string field");
    snprintf(text, sizeof text, "%s{\"prompt\": \"\"}\n", ok);
    expect_bad("empty prompt", text, 2, "\"prompt\" is empty");
    expect_bad("blank prompt", "{\"prompt\": \" \\n\\t \"}\n", 1, "\"prompt\" is empty");
    expect_bad("empty file", "", 0, "no prompts");
    expect_bad("blank lines only", "\n  \n\r\n", 0, "no prompts");
    char **list;
    int n;
    char err[HAT_ERRLEN] = "";
    int rc = prompt_read_file("/nonexistent/hat/p.jsonl", &list, &n, NULL, NULL, err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && strstr(err, "/nonexistent/hat/p.jsonl"), "missing jsonl file: %s", err);
}

int main(void) {
    test_text();
    test_jsonl_good();
    test_jsonl_bad();
    tmp_files_remove();
    return test_summary();
}
