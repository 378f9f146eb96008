/* Grapheme cluster boundaries (grapheme.h), rule by rule from UAX #29's table, over the properties
 * scripts/gen_grapheme_table.py extracts. Scanning keeps three small states for the rules that
 * look further back than one character: the regional indicators in a row (GB12, GB13), an
 * emoji ZWJ sequence ExtPict Extend* ZWJ (GB11), and an Indic conjunct Consonant [Extend Linker]*
 * with a Linker among them (GB9c). */
#include "text/grapheme.h"

#include <stdbool.h>
#include <stdint.h>

#include "text/utf8.h"

typedef enum {
  GB_OTHER, GB_CR, GB_LF, GB_CONTROL, GB_EXTEND, GB_ZWJ, GB_REGIONAL_INDICATOR, GB_PREPEND, GB_SPACINGMARK,
  GB_L, GB_V, GB_T, GB_LV, GB_LVT, GB_EXTENDED_PICTOGRAPHIC
} gb_class;
typedef enum { INCB_NONE, INCB_LINKER, INCB_CONSONANT, INCB_EXTEND } incb_class;

typedef struct {
  uint32_t first, last;
  gb_class gcb;
  incb_class incb;
} grapheme_range;

#include "text/grapheme_table.inc"

static grapheme_range properties(uint32_t point) {
  size_t low = 0, high = sizeof GRAPHEME_RANGES / sizeof GRAPHEME_RANGES[0];
  while (low < high) {
    const size_t mid = (low + high) / 2;
    if (GRAPHEME_RANGES[mid].last < point) low = mid + 1;
    else high = mid;
  }
  if (low < sizeof GRAPHEME_RANGES / sizeof GRAPHEME_RANGES[0] && GRAPHEME_RANGES[low].first <= point)
    return GRAPHEME_RANGES[low];
  return (grapheme_range){point, point, GB_OTHER, INCB_NONE};
}

/* What the characters before a boundary left behind for the rules that look back further. */
typedef struct {
  int regional_run;   /* regional indicators in a row, ending at the previous character */
  int emoji;          /* 1: ExtPict Extend*, 2: ExtPict Extend* ZWJ */
  int conjunct;       /* 1: Consonant [Extend Linker]*, 2: and a Linker among them */
} lookback;

static void remember(lookback *l, grapheme_range c) {
  l->regional_run = c.gcb == GB_REGIONAL_INDICATOR ? l->regional_run + 1 : 0;
  if (c.gcb == GB_EXTENDED_PICTOGRAPHIC) l->emoji = 1;
  else if (c.gcb == GB_EXTEND && l->emoji == 1) l->emoji = 1;
  else if (c.gcb == GB_ZWJ && l->emoji == 1) l->emoji = 2;
  else l->emoji = 0;
  if (c.incb == INCB_CONSONANT) l->conjunct = 1;
  else if (c.incb == INCB_LINKER && l->conjunct) l->conjunct = 2;
  else if (c.incb != INCB_EXTEND) l->conjunct = 0;
}

static bool is_control(gb_class c) { return c == GB_CONTROL || c == GB_CR || c == GB_LF; }

/* Whether the text breaks between a and b. */
static bool breaks(grapheme_range a, grapheme_range b, const lookback *l) {
  if (a.gcb == GB_CR && b.gcb == GB_LF) return false;                          /* GB3 */
  if (is_control(a.gcb) || is_control(b.gcb)) return true;                     /* GB4, GB5 */
  if (a.gcb == GB_L && (b.gcb == GB_L || b.gcb == GB_V || b.gcb == GB_LV || b.gcb == GB_LVT)) return false; /* GB6 */
  if ((a.gcb == GB_LV || a.gcb == GB_V) && (b.gcb == GB_V || b.gcb == GB_T)) return false;               /* GB7 */
  if ((a.gcb == GB_LVT || a.gcb == GB_T) && b.gcb == GB_T) return false;                                 /* GB8 */
  if (b.gcb == GB_EXTEND || b.gcb == GB_ZWJ || b.gcb == GB_SPACINGMARK) return false; /* GB9, GB9a */
  if (a.gcb == GB_PREPEND) return false;                                       /* GB9b */
  if (l->conjunct == 2 && b.incb == INCB_CONSONANT) return false;              /* GB9c */
  if (l->emoji == 2 && b.gcb == GB_EXTENDED_PICTOGRAPHIC) return false;        /* GB11 */
  if (b.gcb == GB_REGIONAL_INDICATOR && l->regional_run % 2 == 1) return false; /* GB12, GB13 */
  return true;                                                                 /* GB999 */
}

size_t osp_grapheme_next(const char *text, size_t bytes) {
  const unsigned char *t = (const unsigned char *)text;
  uint32_t point;
  size_t at = (size_t)osp_utf8_next(t, bytes, &point);
  grapheme_range previous = properties(point);
  lookback l = {0};
  remember(&l, previous);
  while (at < bytes) {
    const int length = osp_utf8_next(t + at, bytes - at, &point);
    const grapheme_range next = properties(point);
    if (breaks(previous, next, &l)) break;
    remember(&l, next);
    previous = next;
    at += (size_t)length;
  }
  return at;
}
