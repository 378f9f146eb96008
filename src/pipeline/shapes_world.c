/* The shapes world's vocabulary, captions, splits and attribute sampling (shapes_world.h);
 * rendering is shapes_render.c. */
#include "pipeline/shapes_world.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/rng.h"
#include "core/status.h"

static const char *const ATTRIBUTE_NAMES[OSP_SHAPES_ATTRIBUTES] = {"size", "colour", "shape", "motion", "background"};
static const char *const SIZE_NAMES[] = {"small", "large"};
static const char *const COLOUR_NAMES[OSP_SHAPES_PALETTE] = {"red",   "green",  "blue",  "yellow",
                                                             "white", "purple", "black", "gray"};
static const char *const SHAPE_NAMES[OSP_SHAPES_SHAPES] = {"circle", "square", "triangle"};
static const char *const MOTION_NAMES[OSP_SHAPES_MOTIONS] = {
    "moving left", "moving right", "moving up", "moving down", "staying still", "bouncing", "growing", "shrinking"};
static const uint8_t PALETTE_RGB[OSP_SHAPES_PALETTE][3] = {
    {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {255, 255, 255}, {192, 0, 255}, {0, 0, 0}, {128, 128, 128}};
static const int BACKGROUNDS[] = {OSP_SHAPES_BLACK, OSP_SHAPES_WHITE, OSP_SHAPES_GRAY, OSP_SHAPES_BLUE,
                                  OSP_SHAPES_GREEN};
enum { BACKGROUND_COUNT = sizeof BACKGROUNDS / sizeof BACKGROUNDS[0] };

static const uint32_t ATTRIBUTE_STREAM = 0x41545452u; /* "ATTR" */

const char *osp_shapes_attribute_name(osp_shapes_attribute attribute) {
  return (int)attribute >= 0 && attribute < OSP_SHAPES_ATTRIBUTES ? ATTRIBUTE_NAMES[attribute] : "?";
}

const char *osp_shapes_value_name(osp_shapes_attribute attribute, int value) {
  switch (attribute) {
    case OSP_SHAPES_SIZE:
      return value >= 0 && value < 2 ? SIZE_NAMES[value] : "?";
    case OSP_SHAPES_COLOUR:
    case OSP_SHAPES_BACKGROUND:
      return value >= 0 && value < OSP_SHAPES_PALETTE ? COLOUR_NAMES[value] : "?";
    case OSP_SHAPES_SHAPE:
      return value >= 0 && value < OSP_SHAPES_SHAPES ? SHAPE_NAMES[value] : "?";
    case OSP_SHAPES_MOTION:
      return value >= 0 && value < OSP_SHAPES_MOTIONS ? MOTION_NAMES[value] : "?";
    default:
      return "?";
  }
}

int osp_shapes_values(osp_shapes_attribute attribute, int values[OSP_SHAPES_MAX_VALUES]) {
  const int counts[OSP_SHAPES_ATTRIBUTES] = {2, OSP_SHAPES_OBJECT_COLOURS, OSP_SHAPES_SHAPES, OSP_SHAPES_MOTIONS,
                                             BACKGROUND_COUNT};
  if ((int)attribute < 0 || attribute >= OSP_SHAPES_ATTRIBUTES) return 0;
  for (int i = 0; i < counts[attribute]; i++) values[i] = attribute == OSP_SHAPES_BACKGROUND ? BACKGROUNDS[i] : i;
  return counts[attribute];
}

const uint8_t *osp_shapes_rgb(osp_shapes_colour colour) {
  return PALETTE_RGB[(int)colour >= 0 && colour < OSP_SHAPES_PALETTE ? colour : OSP_SHAPES_BLACK];
}

static bool allowed(osp_shapes_attribute attribute, int value) {
  int values[OSP_SHAPES_MAX_VALUES];
  int n = osp_shapes_values(attribute, values);
  for (int i = 0; i < n; i++)
    if (values[i] == value) return true;
  return false;
}

/* "red, green, blue, yellow, white or purple": the words an attribute accepts. */
static void expected_words(osp_shapes_attribute attribute, char *out, size_t size) {
  int values[OSP_SHAPES_MAX_VALUES];
  int n = osp_shapes_values(attribute, values);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    size_t used = strlen(out);
    snprintf(out + used, size - used, "%s%s",
             i == 0       ? ""
             : i == n - 1 ? " or "
                          : ", ",
             osp_shapes_value_name(attribute, values[i]));
  }
}

osp_status osp_shapes_check(const osp_shapes_attributes *attributes) {
  for (int a = 0; a < OSP_SHAPES_ATTRIBUTES; a++) {
    if (!allowed((osp_shapes_attribute)a, attributes->value[a])) {
      char expected[128];
      expected_words((osp_shapes_attribute)a, expected, sizeof expected);
      return osp_fail(OSP_ERR_ARGUMENT, "shapes attributes: %s: expected %s, found value %d", ATTRIBUTE_NAMES[a],
                      expected, attributes->value[a]);
    }
  }
  if (attributes->value[OSP_SHAPES_BACKGROUND] == attributes->value[OSP_SHAPES_COLOUR])
    return osp_fail(OSP_ERR_ARGUMENT,
                    "shapes attributes: background: expected a colour other than the object's, "
                    "found %s on %s",
                    COLOUR_NAMES[attributes->value[OSP_SHAPES_COLOUR]],
                    COLOUR_NAMES[attributes->value[OSP_SHAPES_BACKGROUND]]);
  return OSP_OK;
}

/* ---- parsing captions ---- */

/* Walks the whitespace-separated words of a caption. */
typedef struct {
  const char *caption, *cursor;
  int number;       /* words read so far */
  const char *word; /* the last word read (not terminated) */
  size_t length;
} word_reader;

static bool next_word(word_reader *r) {
  while (isspace((unsigned char)*r->cursor)) r->cursor++;
  if (!*r->cursor) return false;
  r->word = r->cursor;
  while (*r->cursor && !isspace((unsigned char)*r->cursor)) r->cursor++;
  r->length = (size_t)(r->cursor - r->word);
  r->number++;
  return true;
}

static int word_count(const char *phrase) {
  int n = 1;
  for (; *phrase; phrase++) n += *phrase == ' ';
  return n;
}

/* How many leading words of `phrase` (words separated by one space) the caption's next words
 * spell, case ignored; *after is the reader past those words. */
static int matching_words(const word_reader *r, const char *phrase, word_reader *after) {
  word_reader trial = *r;
  int matched = 0;
  while (*phrase) {
    const char *end = strchr(phrase, ' ');
    size_t length = end ? (size_t)(end - phrase) : strlen(phrase);
    word_reader next = trial;
    if (!next_word(&next) || next.length != length || strncasecmp(next.word, phrase, length) != 0) break;
    trial = next;
    matched++;
    phrase += length + (end ? 1 : 0);
  }
  *after = trial;
  return matched;
}

/* The caption's next words spell `phrase`; consumes them if so. */
static bool read_phrase(word_reader *r, const char *phrase) {
  word_reader after;
  if (matching_words(r, phrase, &after) < word_count(phrase)) return false;
  *r = after;
  return true;
}

/* The error for a caption whose next word is not `expected`. */
static osp_status unexpected(const word_reader *r, const char *expected) {
  word_reader next = *r;
  if (!next_word(&next))
    return osp_fail(OSP_ERR_ARGUMENT, "shapes caption \"%.120s\": ends after word %d, expected %s", r->caption,
                    r->number, expected);
  return osp_fail(OSP_ERR_ARGUMENT, "shapes caption \"%.120s\": word %d \"%.*s\" is not %s", r->caption, next.number,
                  (int)(next.length > 40 ? 40 : next.length), next.word, expected);
}

static osp_status read_fixed(word_reader *r, const char *word) {
  if (read_phrase(r, word)) return OSP_OK;
  char expected[48];
  snprintf(expected, sizeof expected, "\"%s\"", word);
  return unexpected(r, expected);
}

/* Reads one of an attribute's values. When none matches, the error names the first word that
 * fits no value ("sideways" in "moving sideways"). */
static osp_status read_value(word_reader *r, osp_shapes_attribute attribute, int *value) {
  int values[OSP_SHAPES_MAX_VALUES];
  int n = osp_shapes_values(attribute, values);
  word_reader furthest = *r;
  for (int i = 0; i < n; i++) {
    const char *phrase = osp_shapes_value_name(attribute, values[i]);
    word_reader after;
    int matched = matching_words(r, phrase, &after);
    if (matched == word_count(phrase)) {
      *r = after;
      *value = values[i];
      return OSP_OK;
    }
    if (after.number > furthest.number) furthest = after;
  }
  char words[128], expected[160];
  expected_words(attribute, words, sizeof words);
  snprintf(expected, sizeof expected, "a %s (%s)", ATTRIBUTE_NAMES[attribute], words);
  return unexpected(&furthest, expected);
}

osp_status osp_shapes_parse(const char *caption, osp_shapes_attributes *out) {
  if (!caption) return osp_fail(OSP_ERR_ARGUMENT, "shapes caption: missing (NULL)");
  word_reader r = {.caption = caption, .cursor = caption};
  osp_shapes_attributes a;
  OSP_TRY(read_fixed(&r, "a"));
  for (int attribute = OSP_SHAPES_SIZE; attribute <= OSP_SHAPES_MOTION; attribute++)
    OSP_TRY(read_value(&r, (osp_shapes_attribute)attribute, &a.value[attribute]));
  OSP_TRY(read_fixed(&r, "on"));
  OSP_TRY(read_fixed(&r, "a"));
  OSP_TRY(read_value(&r, OSP_SHAPES_BACKGROUND, &a.value[OSP_SHAPES_BACKGROUND]));
  OSP_TRY(read_fixed(&r, "background"));
  word_reader rest = r;
  if (next_word(&rest))
    return osp_fail(OSP_ERR_ARGUMENT,
                    "shapes caption \"%.120s\": word %d \"%.*s\": expected nothing after "
                    "\"background\"",
                    caption, rest.number, (int)(rest.length > 40 ? 40 : rest.length), rest.word);
  if (a.value[OSP_SHAPES_BACKGROUND] == a.value[OSP_SHAPES_COLOUR])
    return osp_fail(OSP_ERR_ARGUMENT,
                    "shapes caption \"%.120s\": the background \"%s\" is the object's colour: "
                    "expected another",
                    caption, COLOUR_NAMES[a.value[OSP_SHAPES_COLOUR]]);
  *out = a;
  return OSP_OK;
}

osp_status osp_shapes_caption(const osp_shapes_attributes *attributes, char *out, size_t size) {
  OSP_TRY(osp_shapes_check(attributes));
  const int *v = attributes->value;
  int n = snprintf(out, size, "a %s %s %s %s on a %s background", SIZE_NAMES[v[OSP_SHAPES_SIZE]],
                   COLOUR_NAMES[v[OSP_SHAPES_COLOUR]], SHAPE_NAMES[v[OSP_SHAPES_SHAPE]],
                   MOTION_NAMES[v[OSP_SHAPES_MOTION]], COLOUR_NAMES[v[OSP_SHAPES_BACKGROUND]]);
  if (n < 0 || (size_t)n >= size)
    return osp_fail(OSP_ERR_ARGUMENT, "shapes caption: expected a buffer of at least %d bytes, found %zu", n + 1, size);
  return OSP_OK;
}

/* ---- splits ---- */

bool osp_shapes_is_heldout(int colour, int shape, int motion) { return (colour + 2 * shape + 3 * motion) % 10 == 0; }

osp_shapes_split osp_shapes_split_of(const osp_shapes_attributes *attributes) {
  const int *v = attributes->value;
  return osp_shapes_is_heldout(v[OSP_SHAPES_COLOUR], v[OSP_SHAPES_SHAPE], v[OSP_SHAPES_MOTION]) ? OSP_SHAPES_HELDOUT
                                                                                                : OSP_SHAPES_TRAIN;
}

osp_status osp_shapes_split_parse(const char *name, osp_shapes_split *split) {
  if (name && !strcmp(name, "train"))
    *split = OSP_SHAPES_TRAIN;
  else if (name && !strcmp(name, "heldout"))
    *split = OSP_SHAPES_HELDOUT;
  else
    return osp_fail(OSP_ERR_ARGUMENT, "shapes split: expected train or heldout, found '%s'", name ? name : "(null)");
  return OSP_OK;
}

const char *osp_shapes_split_name(osp_shapes_split split) { return split == OSP_SHAPES_HELDOUT ? "heldout" : "train"; }

/* The split's triples t = (c·3 + s)·8 + m in increasing order, into triples[]; returns how many. */
static int split_triples(osp_shapes_split split, int triples[OSP_SHAPES_TRIPLES]) {
  int n = 0;
  for (int t = 0; t < OSP_SHAPES_TRIPLES; t++) {
    int colour = t / (OSP_SHAPES_SHAPES * OSP_SHAPES_MOTIONS), shape = t / OSP_SHAPES_MOTIONS % OSP_SHAPES_SHAPES;
    bool heldout = osp_shapes_is_heldout(colour, shape, t % OSP_SHAPES_MOTIONS);
    if (heldout == (split == OSP_SHAPES_HELDOUT)) triples[n++] = t;
  }
  return n;
}

/* Attributes from a triple, a size and the number of a background among the colour's allowed ones
 * (taken modulo their count). */
static void attributes_of(int triple, int size, int background_number, osp_shapes_attributes *out) {
  int colour = triple / (OSP_SHAPES_SHAPES * OSP_SHAPES_MOTIONS);
  int choices[BACKGROUND_COUNT], n = 0;
  for (int i = 0; i < BACKGROUND_COUNT; i++)
    if (BACKGROUNDS[i] != colour) choices[n++] = BACKGROUNDS[i];
  out->value[OSP_SHAPES_SIZE] = size;
  out->value[OSP_SHAPES_COLOUR] = colour;
  out->value[OSP_SHAPES_SHAPE] = triple / OSP_SHAPES_MOTIONS % OSP_SHAPES_SHAPES;
  out->value[OSP_SHAPES_MOTION] = triple % OSP_SHAPES_MOTIONS;
  out->value[OSP_SHAPES_BACKGROUND] = choices[background_number % n];
}

/* ⌊bits·n / 2^32⌋: an integer in [0, n) from 32 random bits. */
static int pick(uint32_t bits, int n) { return (int)(((uint64_t)bits * (uint64_t)n) >> 32); }

void osp_shapes_sample(uint64_t seed, uint64_t index, osp_shapes_split split, osp_shapes_attributes *out) {
  int triples[OSP_SHAPES_TRIPLES];
  int n = split_triples(split, triples);
  osp_philox_ctr counter = {{(uint32_t)index, (uint32_t)(index >> 32), ATTRIBUTE_STREAM, 0}};
  osp_philox_key key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
  osp_philox_ctr bits = osp_philox4x32_10(counter, key);
  /* The allowed backgrounds number 4 or 5 by colour: draw the background among 20, a multiple of
   * both, so the modulo in attributes_of stays uniform. */
  attributes_of(triples[pick(bits.v[0], n)], pick(bits.v[1], 2), pick(bits.v[2], 20), out);
}

osp_status osp_shapes_prompt(osp_shapes_split split, int index, osp_shapes_attributes *out) {
  if (index < 0 || index >= OSP_SHAPES_PROMPTS)
    return osp_fail(OSP_ERR_ARGUMENT, "shapes prompt set (%s): index: expected 0..%d, found %d",
                    osp_shapes_split_name(split), OSP_SHAPES_PROMPTS - 1, index);
  int triples[OSP_SHAPES_TRIPLES];
  int n = split_triples(split, triples);
  attributes_of(triples[index * n / OSP_SHAPES_PROMPTS], index % 2, index / 2, out);
  return OSP_OK;
}
