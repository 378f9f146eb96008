/* Prompt cleaning (src/text/prompt_clean.h) against diffusers' own prompt_clean, over the cases of
 * tests/ref/make_prompt_clean_cases.py:
 *
 *   ~/.cache/osp-venv/bin/python tests/ref/make_prompt_clean_cases.py build/ref/prompt_clean
 *   build/test_prompt_clean_ref build/ref/prompt_clean
 *
 * Each line of prompt_clean.jsonl is a string (base64 of its UTF-8 bytes) and either the cleaned
 * bytes, which OSP must give exactly, or the byte offset where Python's UTF-8 decoder refuses it,
 * which OSP's error must name. A few checks need no reference: the exact error messages, and a
 * cleaned text that holds U+0000. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "harness.h"
#include "text/prompt_clean.h"

enum { FEWEST_CASES = 4000 }; /* the script writes 4236: fewer means a truncated file */

/* The value of one base64 character, or -1. */
static int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes padded base64 into a malloc'd buffer of *bytes bytes; NULL where it is not base64. */
static unsigned char *base64_decode(const char *text, size_t *bytes) {
  const size_t length = strlen(text);
  if (length % 4) return NULL;
  unsigned char *data = malloc(length / 4 * 3 + 1);
  if (!data) return NULL;
  size_t n = 0;
  for (size_t at = 0; at < length; at += 4) {
    const int padding = (text[at + 3] == '=') + (text[at + 2] == '=');
    uint32_t group = 0;
    for (int k = 0; k < 4; k++) {
      const int value = k >= 4 - padding ? 0 : base64_value(text[at + k]);
      if (value < 0 || (padding && at + 4 != length)) {
        free(data);
        return NULL;
      }
      group = group << 6 | (uint32_t)value;
    }
    for (int k = 0; k < 3 - padding; k++) data[n++] = (unsigned char)(group >> (16 - 8 * k));
  }
  *bytes = n;
  return data;
}

/* Prints a byte string with its non-printable bytes escaped. */
static void print_bytes(const char *label, const unsigned char *data, size_t bytes) {
  fprintf(stderr, "    %s \"", label);
  for (size_t i = 0; i < bytes; i++) {
    if (data[i] >= 0x20 && data[i] < 0x7F && data[i] != '"' && data[i] != '\\') fputc(data[i], stderr);
    else fprintf(stderr, "\\x%02x", data[i]);
  }
  fprintf(stderr, "\"\n");
}

/* The cleaning of `input` is exactly `expected`. */
static bool check_cleaned(const char *name, const unsigned char *input, size_t input_bytes,
                          const unsigned char *expected, size_t expected_bytes) {
  char *got = NULL;
  size_t got_bytes = 0;
  if (osp_prompt_clean((const char *)input, input_bytes, &got, &got_bytes) != OSP_OK) {
    fprintf(stderr, "case '%s': %s\n", name, osp_last_error());
    return false;
  }
  const bool same = got_bytes == expected_bytes && memcmp(got, expected, got_bytes) == 0 && got[got_bytes] == '\0';
  if (!same) {
    fprintf(stderr, "case '%s': the cleaned text differs\n", name);
    print_bytes("input   ", input, input_bytes);
    print_bytes("expected", expected, expected_bytes);
    print_bytes("got     ", (const unsigned char *)got, got_bytes);
  }
  free(got);
  return same;
}

/* The cleaning of `input` fails, naming byte `at`, and gives no text. */
static bool check_refused(const char *name, const unsigned char *input, size_t input_bytes, json_int_t at) {
  char *got = (char *)"not NULL";
  size_t got_bytes = 1;
  const osp_status status = osp_prompt_clean((const char *)input, input_bytes, &got, &got_bytes);
  char want[64];
  snprintf(want, sizeof want, "invalid UTF-8 at byte %lld:", (long long)at);
  const bool refused = status == OSP_ERR_ARGUMENT && strstr(osp_last_error(), want) && !got && !got_bytes;
  if (!refused)
    fprintf(stderr, "case '%s': expected an error naming '%s', got %s: %s\n", name, want, osp_status_name(status),
            status == OSP_OK ? "(cleaned)" : osp_last_error());
  if (status == OSP_OK) free(got);
  return refused;
}

/* One line of the file: a string and its expected cleaning or the byte it is refused at. */
static bool run_case(const char *line, int line_number) {
  json_error_t error;
  json_t *root = json_loads(line, 0, &error);
  const char *name = NULL, *input64 = NULL, *expected64 = NULL;
  json_int_t invalid_at = -1;
  const bool read = root && !json_unpack_ex(root, &error, 0, "{s:s, s:s, s?s, s?I}", "name", &name, "input",
                                            &input64, "expected", &expected64, "invalid_at", &invalid_at);
  if (!read || (expected64 != NULL) == (invalid_at >= 0)) {
    fprintf(stderr, "line %d: not a case: %s\n", line_number, read ? "it needs one of expected and invalid_at" : error.text);
    json_decref(root);
    return false;
  }
  size_t input_bytes = 0, expected_bytes = 0;
  unsigned char *input = base64_decode(input64, &input_bytes);
  unsigned char *expected = expected64 ? base64_decode(expected64, &expected_bytes) : NULL;
  bool passed = input && (expected || !expected64);
  if (!passed) fprintf(stderr, "line %d (%s): a string is not base64\n", line_number, name);
  else if (expected) passed = check_cleaned(name, input, input_bytes, expected, expected_bytes);
  else passed = check_refused(name, input, input_bytes, invalid_at);
  free(input);
  free(expected);
  json_decref(root);
  return passed;
}

/* Runs every case of DIR/prompt_clean.jsonl, and fails if there are too few. */
static void run_cases(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/prompt_clean.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "test_prompt_clean_ref: cannot open %s: run tests/ref/make_prompt_clean_cases.py %s\n", path, dir);
    CHECK(f != NULL);
    return;
  }
  char *line = NULL;
  size_t capacity = 0;
  int count = 0, failed = 0;
  while (getline(&line, &capacity, f) > 0) {
    const bool passed = run_case(line, ++count);
    CHECK(passed);
    failed += !passed;
  }
  free(line);
  fclose(f);
  printf("%s: %d cases, %d failed\n", path, count, failed);
  CHECK(count >= FEWEST_CASES);
}

/* What the error says, exactly, for each way UTF-8 goes wrong. */
static void check_error(const char *text, size_t bytes, const char *want) {
  char *out = NULL;
  size_t out_bytes = 0;
  const osp_status status = osp_prompt_clean(text, bytes, &out, &out_bytes);
  const bool as_expected = status == OSP_ERR_ARGUMENT && strcmp(osp_last_error(), want) == 0;
  if (!as_expected)
    fprintf(stderr, "expected: %s\n     got: %s\n", want, status == OSP_OK ? "no error" : osp_last_error());
  CHECK(as_expected);
  if (status == OSP_OK) free(out);
}

static void check_error_messages(void) {
  check_error("ab\xff", 3, "prompt: invalid UTF-8 at byte 2: 0xFF cannot start a character");
  check_error("caf\xc3", 4, "prompt: invalid UTF-8 at byte 3: the text ends inside a 2-byte character");
  check_error("x\xed\xa0\x80", 4,
              "prompt: invalid UTF-8 at byte 1: 0xA0 (byte 2) cannot continue the character 0xED starts");
  check_error("\xf0\x9f\x98" "A", 4,
              "prompt: invalid UTF-8 at byte 0: 0x41 (byte 3) cannot continue the character 0xF0 starts");
  check_error(NULL, 3, "prompt: no text, but 3 bytes of it");
}

/* Bytes the cleaning keeps, U+0000 among them, and no text at all. */
static void check_lengths(void) {
  char *out = NULL;
  size_t out_bytes = 0;
  CHECK(osp_prompt_clean(" a\0b &lt; ", 10, &out, &out_bytes) == OSP_OK);
  CHECK(out_bytes == 5 && memcmp(out, "a\0b <", 6) == 0);
  free(out);
  CHECK(osp_prompt_clean(NULL, 0, &out, &out_bytes) == OSP_OK);
  CHECK(out_bytes == 0 && out && out[0] == '\0');
  free(out);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CASE_DIR   (written by tests/ref/make_prompt_clean_cases.py)\n", argv[0]);
    return 2;
  }
  run_cases(argv[1]);
  check_error_messages();
  check_lengths();
  return test_summary("test_prompt_clean_ref");
}
