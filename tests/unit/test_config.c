/* Tests of src/core/config.c: presets and their parameter counts (PAPER.md 1.1), the published
 * Wan2.1 config.json files in both spellings, OSP-Next's Skiparse keys and OSP's schedules
 * (PAPER.md 5.9), the command-line overrides, and every error. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "harness.h"

/* Wan-AI/Wan2.1-T2V-1.3B-Diffusers, transformer/config.json (diffusers 0.42 adds
 * pos_embed_seq_len, included here). */
static const char DIFFUSERS_1_3B[] =
    "{\n"
    "  \"_class_name\": \"WanTransformer3DModel\",\n"
    "  \"_diffusers_version\": \"0.33.0.dev0\",\n"
    "  \"added_kv_proj_dim\": null,\n"
    "  \"attention_head_dim\": 128,\n"
    "  \"cross_attn_norm\": true,\n"
    "  \"eps\": 1e-06,\n"
    "  \"ffn_dim\": 8960,\n"
    "  \"freq_dim\": 256,\n"
    "  \"image_dim\": null,\n"
    "  \"in_channels\": 16,\n"
    "  \"num_attention_heads\": 12,\n"
    "  \"num_layers\": 30,\n"
    "  \"out_channels\": 16,\n"
    "  \"patch_size\": [\n    1,\n    2,\n    2\n  ],\n"
    "  \"pos_embed_seq_len\": null,\n"
    "  \"qk_norm\": \"rms_norm_across_heads\",\n"
    "  \"rope_max_seq_len\": 1024,\n"
    "  \"text_dim\": 4096\n"
    "}\n";

/* Wan-AI/Wan2.1-T2V-14B-Diffusers, transformer/config.json. */
static const char DIFFUSERS_14B[] =
    "{\"_class_name\": \"WanTransformer3DModel\", \"_diffusers_version\": \"0.33.0.dev0\",\n"
    " \"added_kv_proj_dim\": null, \"attention_head_dim\": 128, \"cross_attn_norm\": true,\n"
    " \"eps\": 1e-06, \"ffn_dim\": 13824, \"freq_dim\": 256, \"image_dim\": null,\n"
    " \"in_channels\": 16, \"num_attention_heads\": 40, \"num_layers\": 40,\n"
    " \"out_channels\": 16, \"patch_size\": [1, 2, 2], \"qk_norm\": \"rms_norm_across_heads\",\n"
    " \"rope_max_seq_len\": 1024, \"text_dim\": 4096}\n";

/* Wan-AI/Wan2.1-T2V-1.3B, config.json: WanModel leaves patch_size, cross_attn_norm, qk_norm,
 * text_dim and window_size out of its config (ignore_for_config). */
static const char ORIGINAL_1_3B[] =
    "{\n"
    "  \"_class_name\": \"WanModel\",\n"
    "  \"_diffusers_version\": \"0.30.0\",\n"
    "  \"dim\": 1536,\n"
    "  \"eps\": 1e-06,\n"
    "  \"ffn_dim\": 8960,\n"
    "  \"freq_dim\": 256,\n"
    "  \"in_dim\": 16,\n"
    "  \"model_type\": \"t2v\",\n"
    "  \"num_heads\": 12,\n"
    "  \"num_layers\": 30,\n"
    "  \"out_dim\": 16,\n"
    "  \"text_len\": 512\n"
    "}\n";

/* Wan-AI/Wan2.1-T2V-14B, config.json. */
static const char ORIGINAL_14B[] =
    "{\"_class_name\": \"WanModel\", \"_diffusers_version\": \"0.30.0\", \"dim\": 5120,\n"
    " \"eps\": 1e-06, \"ffn_dim\": 13824, \"freq_dim\": 256, \"in_dim\": 16,\n"
    " \"model_type\": \"t2v\", \"num_heads\": 40, \"num_layers\": 40, \"out_dim\": 16,\n"
    " \"text_len\": 512}\n";

/* A small model in diffusers' spelling, as tests/checks writes them: the keys each case adds or
 * breaks come after it. */
#define TINY "\"num_attention_heads\": 2, \"attention_head_dim\": 12, \"ffn_dim\": 32"
#define TINY_4 TINY ", \"num_layers\": 4"
#define TINY_8 TINY ", \"num_layers\": 8"
/* OSP-Next's three keys, appended after TINY_4 or TINY_8. */
#define SKIPARSE(type, ratio, full)                                    \
  ", \"skiparse_model_type\": \"" type "\", \"sparse_ratio\": " #ratio \
  ", \"num_full_blocks\": " #full

/* OSP's keys, appended after TINY_4 or TINY_8. */
#define EVERY_K(k) ", \"skiparse_model_type\": \"every_k\", \"every_k\": " #k
#define LIST_FTGF ", \"skiparse_schedule\": [\"full\", \"token\", \"group\", \"full\"]"

static const char LABEL[] = "case.json";

static osp_status parse(const char *text, osp_model_config *cfg) {
  return osp_config_parse(LABEL, text, strlen(text), cfg);
}

/* osp_model_config is 4-byte fields and then the schedule's bytes (a multiple of 4), so it has no
 * padding to differ in; the parser zeroes the schedule past the last block. */
static int same_config(const osp_model_config *a, const osp_model_config *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

static int has_schedule(const osp_model_config *cfg, osp_skiparse_type type, int ratio, int full) {
  return cfg->skiparse_model_type == type && cfg->sparse_ratio == ratio &&
         cfg->num_full_blocks == full;
}

static osp_model_config preset(const char *name) {
  osp_model_config cfg;
  memset(&cfg, 0, sizeof cfg);
  CHECK(osp_config_preset(name, &cfg) == OSP_OK);
  return cfg;
}

/* Parameters of one block: the count's change when a block is taken away. */
static int64_t block_param_count(const osp_model_config *cfg) {
  osp_model_config one_block_less = *cfg;
  one_block_less.num_layers--;
  return osp_config_param_count(cfg) - osp_config_param_count(&one_block_less);
}

static void test_presets(void) {
  for (int i = 0; osp_config_preset_names[i]; i++) {
    osp_model_config cfg = preset(osp_config_preset_names[i]);
    CHECK(osp_config_validate(osp_config_preset_names[i], &cfg) == OSP_OK);
    CHECK(cfg.head_dim == 128 && cfg.dim == cfg.num_heads * 128);
    CHECK(cfg.text_len == 512 && cfg.freq_dim == 256 && cfg.text_dim == 4096);
  }
  osp_model_config small = preset("wan2.1-t2v-1.3b"), large = preset("wan2.1-t2v-14b");
  CHECK(small.dim == 1536 && small.ffn_dim == 8960 && small.num_heads == 12);
  CHECK(large.dim == 5120 && large.ffn_dim == 13824 && large.num_heads == 40);
  CHECK(small.num_layers == 30 && large.num_layers == 40);
  CHECK(has_schedule(&small, OSP_SKIPARSE_FULL, 1, 30));

  /* PAPER.md 1.1: 30 x 46,440,704 + 25,775,680 and 40 x 351,394,304 + 232,719,424. */
  CHECK(osp_config_param_count(&small) == INT64_C(1418996800));
  CHECK(osp_config_param_count(&large) == INT64_C(14288491584));
  CHECK(block_param_count(&small) == 46440704);
  CHECK(block_param_count(&large) == 351394304);

  /* OSP-Next adds no parameters; only the schedule differs. */
  osp_model_config next_small = preset("osp-next-1.3b"), next_large = preset("osp-next-14b");
  CHECK(has_schedule(&next_small, OSP_SKIPARSE_DUAL_END, 2, 8));
  CHECK(has_schedule(&next_large, OSP_SKIPARSE_DUAL_END, 2, 8));
  CHECK(osp_config_param_count(&next_small) == osp_config_param_count(&small));
  CHECK(osp_config_param_count(&next_large) == osp_config_param_count(&large));

  osp_model_config untouched = small;
  CHECK(osp_config_preset("wan2.2-t2v-5b", &untouched) == OSP_ERR_ARGUMENT);
  CHECK(strstr(osp_last_error(), "wan2.2-t2v-5b") && strstr(osp_last_error(), "osp-next-14b"));
  CHECK(same_config(&untouched, &small));
}

static void test_published_files(void) {
  const struct {
    const char *text, *preset;
  } files[] = {
      {DIFFUSERS_1_3B, "wan2.1-t2v-1.3b"},
      {DIFFUSERS_14B, "wan2.1-t2v-14b"},
      {ORIGINAL_1_3B, "wan2.1-t2v-1.3b"},
      {ORIGINAL_14B, "wan2.1-t2v-14b"},
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    osp_model_config cfg, expected = preset(files[i].preset);
    CHECK(parse(files[i].text, &cfg) == OSP_OK);
    CHECK(same_config(&cfg, &expected));
  }
}

static void test_defaults(void) {
  osp_model_config cfg;
  CHECK(parse("{" TINY_4 "}", &cfg) == OSP_OK);
  CHECK(cfg.dim == 24 && cfg.num_heads == 2 && cfg.head_dim == 12);
  CHECK(cfg.num_layers == 4 && cfg.ffn_dim == 32);
  CHECK(cfg.in_channels == 16 && cfg.out_channels == 16);
  CHECK(cfg.text_dim == 4096 && cfg.freq_dim == 256);
  CHECK(cfg.text_len == 512 && cfg.rope_max_seq_len == 1024);
  CHECK(cfg.patch_size[0] == 1 && cfg.patch_size[1] == 2 && cfg.patch_size[2] == 2);
  CHECK_NEAR(cfg.eps, 1e-6, 1e-12);
  CHECK(cfg.cross_attn_norm == 1 && cfg.qk_norm == 1);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_FULL, 1, 4));

  /* diffusers: out_channels = out_channels or in_channels. */
  CHECK(parse("{" TINY_4 ", \"in_channels\": 8, \"out_channels\": null}", &cfg) == OSP_OK);
  CHECK(cfg.in_channels == 8 && cfg.out_channels == 8);

  const char *explicit_values =
      "{" TINY_4 ", \"cross_attn_norm\": false, \"eps\": 1e-5, \"patch_size\": [2, 4, 4]}";
  CHECK(parse(explicit_values, &cfg) == OSP_OK);
  CHECK(cfg.cross_attn_norm == 0 && cfg.patch_size[0] == 2 && cfg.patch_size[2] == 4);
  CHECK_NEAR(cfg.eps, 1e-5, 1e-6);
  osp_model_config with_norm = cfg;
  with_norm.cross_attn_norm = 1; /* norm3's weight and bias, in each of 4 blocks */
  CHECK(osp_config_param_count(&with_norm) - osp_config_param_count(&cfg) == 4 * 2 * 24);
}

static void test_mixed_spellings(void) {
  osp_model_config cfg, expected = preset("wan2.1-t2v-1.3b");
  const char *mixed =
      "{\"dim\": 1536, \"num_heads\": 12, \"num_attention_heads\": 12, \"attention_head_dim\": 128,"
      " \"num_layers\": 30, \"ffn_dim\": 8960, \"in_dim\": 16, \"in_channels\": 16,"
      " \"out_dim\": 16,"
      " \"qk_norm\": true, \"window_size\": [-1, -1], \"model_type\": \"t2v\", \"image_dim\": null,"
      " \"_use_default_values\": [\"eps\"]}";
  CHECK(parse(mixed, &cfg) == OSP_OK);
  CHECK(same_config(&cfg, &expected));
}

static void test_skiparse_keys(void) {
  osp_model_config cfg;
  /* OSP-Next's own files nest the keys under model_config; both places may agree. */
  const char *nested = "{" TINY_8 ", \"model_config\": {\"x\": 1" SKIPARSE("dual_end", 2, 4) "}}";
  CHECK(parse(nested, &cfg) == OSP_OK);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 2, 4));
  const char *both =
      "{" TINY_8 SKIPARSE("uniform", 2, 0) ", \"model_config\": {\"sparse_ratio\": 2}}";
  CHECK(parse(both, &cfg) == OSP_OK);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_UNIFORM, 2, 0));

  /* "full" forces the ratio to 1 (and every block is full), whatever the file says. */
  CHECK(parse("{" TINY_8 SKIPARSE("full", 2, 4) "}", &cfg) == OSP_OK);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_FULL, 1, 8));

  /* The released OSP-Next schedule added to the published diffusers file. */
  char released[sizeof DIFFUSERS_1_3B + 128];
  int body = (int)(strrchr(DIFFUSERS_1_3B, '}') - DIFFUSERS_1_3B);
  snprintf(released, sizeof released, "%.*s" SKIPARSE("dual_end", 2, 8) "}", body, DIFFUSERS_1_3B);
  osp_model_config expected = preset("osp-next-1.3b");
  CHECK(parse(released, &cfg) == OSP_OK);
  CHECK(same_config(&cfg, &expected));
}

typedef struct {
  const char *text;
  osp_status status;
  const char *needles[3]; /* each must appear in the message, beside the label */
} error_case;

/* clang-format off */
static const error_case error_cases[] = {
    /* JSON syntax: jansson's line and column */
    {"{\n  \"num_layers\": 30,\n}", OSP_ERR_FORMAT, {"invalid JSON", "line 3", "column 1"}},
    {"", OSP_ERR_FORMAT, {"invalid JSON", "line"}},
    {"{" TINY_4 "} trailing", OSP_ERR_FORMAT, {"invalid JSON"}},
    {"{" TINY_4 ", \"num_layers\": 8}", OSP_ERR_FORMAT, {"duplicate", "num_layers"}},
    {"[1, 2]", OSP_ERR_FORMAT, {"top level", "an array of 2"}},
    {"{" TINY_4 ", \"model_config\": 3}", OSP_ERR_FORMAT, {"'model_config'", "an object"}},
    /* wrong JSON types and absurd sizes */
    {"{" TINY ", \"num_layers\": \"30\"}", OSP_ERR_FORMAT,
     {"'num_layers'", "an integer", "\"30\""}},
    {"{" TINY ", \"num_layers\": 30.5}", OSP_ERR_FORMAT, {"'num_layers'", "found 30.5"}},
    {"{" TINY ", \"num_layers\": -1}", OSP_ERR_FORMAT, {"'num_layers'", "found -1"}},
    {"{" TINY ", \"num_layers\": 0}", OSP_ERR_FORMAT, {"'num_layers'", "found 0"}},
    {"{" TINY ", \"num_layers\": 1e12}", OSP_ERR_FORMAT, {"'num_layers'", "1000000000000.0"}},
    {"{" TINY ", \"num_layers\": 1000000000000}", OSP_ERR_FORMAT,
     {"'num_layers'", "found 1000000000000"}},
    {"{" TINY ", \"num_layers\": null}", OSP_ERR_FORMAT, {"'num_layers'", "found null"}},
    {"{" TINY_4 ", \"text_len\": \"512\"}", OSP_ERR_FORMAT, {"'text_len'"}},
    {"{" TINY_4 ", \"in_channels\": 0}", OSP_ERR_FORMAT, {"'in_channels'"}},
    {"{" TINY_4 ", \"in_dim\": 100000}", OSP_ERR_FORMAT, {"'in_dim'", "100000"}},
    {"{\"num_attention_heads\": 100000, \"attention_head_dim\": 100000, \"ffn_dim\": 32, "
     "\"num_layers\": 1}", OSP_ERR_FORMAT, {"'attention_head_dim'", "10000000000"}},
    {"{" TINY_4 ", \"eps\": 0}", OSP_ERR_FORMAT, {"'eps'", "found 0"}},
    {"{" TINY_4 ", \"eps\": 1e-50}", OSP_ERR_FORMAT, {"'eps'"}},
    {"{" TINY_4 ", \"eps\": \"1e-6\"}", OSP_ERR_FORMAT, {"'eps'", "a number"}},
    {"{" TINY_4 ", \"cross_attn_norm\": \"yes\"}", OSP_ERR_FORMAT,
     {"'cross_attn_norm'", "\"yes\""}},
    {"{" TINY_4 ", \"patch_size\": [1, 2]}", OSP_ERR_FORMAT, {"'patch_size'", "an array of 2"}},
    {"{" TINY_4 ", \"patch_size\": 2}", OSP_ERR_FORMAT, {"'patch_size'"}},
    {"{" TINY_4 ", \"patch_size\": [1, 0, 2]}", OSP_ERR_FORMAT, {"'patch_size[1]'", "found 0"}},
    {"{" TINY_4 ", \"patch_size\": [1, 2, \"2\"]}", OSP_ERR_FORMAT, {"'patch_size[2]'"}},
    /* missing and inconsistent sizes */
    {"{" TINY "}", OSP_ERR_MISSING, {"missing 'num_layers'"}},
    {"{\"attention_head_dim\": 12, \"ffn_dim\": 32, \"num_layers\": 4}", OSP_ERR_MISSING,
     {"'num_attention_heads'", "'num_heads'"}},
    {"{\"num_heads\": 2, \"ffn_dim\": 32, \"num_layers\": 4}", OSP_ERR_MISSING,
     {"'attention_head_dim'", "'dim'"}},
    {"{" TINY_4 ", \"num_heads\": 3}", OSP_ERR_FORMAT,
     {"'num_attention_heads'", "'num_heads'", "disagree"}},
    {"{" TINY_4 ", \"out_channels\": 16, \"out_dim\": 8}", OSP_ERR_FORMAT,
     {"'out_channels'", "'out_dim'", "disagree"}},
    {"{" TINY_4 ", \"dim\": 36}", OSP_ERR_FORMAT, {"'dim'", "'attention_head_dim'", "disagree"}},
    {"{\"dim\": 1536, \"num_heads\": 10, \"ffn_dim\": 32, \"num_layers\": 4}", OSP_ERR_FORMAT,
     {"'dim'", "multiple"}},
    {"{\"num_heads\": 1, \"attention_head_dim\": 7, \"ffn_dim\": 32, \"num_layers\": 4}",
     OSP_ERR_FORMAT, {"'attention_head_dim'", "even", "found 7"}},
    {"{\"num_heads\": 3, \"dim\": 12, \"ffn_dim\": 32, \"num_layers\": 4}", OSP_ERR_FORMAT,
     {"'attention_head_dim'", "found 4"}},
    {"{" TINY_4 ", \"freq_dim\": 255}", OSP_ERR_FORMAT, {"'freq_dim'", "even"}},
    /* models this engine does not run */
    {"{" TINY_4 ", \"image_dim\": 1280}", OSP_ERR_UNSUPPORTED,
     {"'image_dim'", "image-to-video is not supported"}},
    {"{" TINY_4 ", \"added_kv_proj_dim\": 24}", OSP_ERR_UNSUPPORTED,
     {"'added_kv_proj_dim'", "image-to-video"}},
    {"{" TINY_4 ", \"pos_embed_seq_len\": 514}", OSP_ERR_UNSUPPORTED,
     {"'pos_embed_seq_len'", "found 514", "first-last-frame"}},
    {"{" TINY_4 ", \"model_type\": \"i2v\"}", OSP_ERR_UNSUPPORTED,
     {"'model_type'", "\"i2v\"", "\"t2v\""}},
    {"{" TINY_4 ", \"model_type\": 1}", OSP_ERR_FORMAT, {"'model_type'"}},
    {"{" TINY_4 ", \"window_size\": [256, 256]}", OSP_ERR_UNSUPPORTED,
     {"'window_size[0]'", "found 256", "local-window"}},
    {"{" TINY_4 ", \"window_size\": \"global\"}", OSP_ERR_FORMAT, {"'window_size'", "[-1, -1]"}},
    {"{" TINY_4 ", \"qk_norm\": false}", OSP_ERR_UNSUPPORTED, {"'qk_norm'", "found false"}},
    {"{" TINY_4 ", \"qk_norm\": null}", OSP_ERR_UNSUPPORTED, {"'qk_norm'", "found null"}},
    {"{" TINY_4 ", \"qk_norm\": \"rms_norm\"}", OSP_ERR_UNSUPPORTED, {"'qk_norm'", "\"rms_norm\""}},
    {"{" TINY_4 ", \"qk_norm\": 1}", OSP_ERR_FORMAT, {"'qk_norm'"}},
    /* control bytes in a value stay out of the one-line message */
    {"{" TINY_4 ", \"model_type\": \"i2v\\nnext\"}", OSP_ERR_UNSUPPORTED, {"\"i2v?next\""}},
    /* Skiparse keys */
    {"{" TINY_8 ", \"skiparse_model_type\": \"sparse\"}", OSP_ERR_FORMAT,
     {"'skiparse_model_type'", "\"sparse\"", "\"dual_end\""}},
    {"{" TINY_8 ", \"skiparse_model_type\": 2}", OSP_ERR_FORMAT, {"'skiparse_model_type'"}},
    {"{" TINY_8 ", \"model_config\": {\"skiparse_model_type\": \"Full\"}}", OSP_ERR_FORMAT,
     {"'model_config.skiparse_model_type'", "\"Full\""}},
    {"{" TINY_8 ", \"skiparse_model_type\": \"dual_end\", \"num_full_blocks\": 4}",
     OSP_ERR_MISSING, {"'sparse_ratio'", "\"dual_end\""}},
    {"{" TINY_8 ", \"skiparse_model_type\": \"dual_end\", \"sparse_ratio\": 2}",
     OSP_ERR_MISSING, {"'num_full_blocks'"}},
    {"{" TINY_8 ", \"sparse_ratio\": 0}", OSP_ERR_FORMAT, {"'sparse_ratio'", "found 0"}},
    {"{" TINY_8 ", \"sparse_ratio\": \"2\"}", OSP_ERR_FORMAT, {"'sparse_ratio'", "\"2\""}},
    {"{" TINY_8 ", \"model_config\": {\"sparse_ratio\": 17}}", OSP_ERR_FORMAT,
     {"'model_config.sparse_ratio'", "found 17"}},
    {"{" TINY_8 ", \"num_full_blocks\": -2}", OSP_ERR_FORMAT, {"'num_full_blocks'", "found -2"}},
    {"{" TINY_8 ", \"sparse_ratio\": 2, \"model_config\": {\"sparse_ratio\": 3}}", OSP_ERR_FORMAT,
     {"'sparse_ratio'", "'model_config.sparse_ratio'", "disagree"}},
    {"{" TINY ", \"num_layers\": 7" SKIPARSE("dual_end", 2, 0) "}", OSP_ERR_FORMAT,
     {"'num_layers'", "even", "found 7"}},
    {"{" TINY_8 SKIPARSE("dual_end", 2, 8) "}", OSP_ERR_FORMAT,
     {"'num_full_blocks'", "<= num_layers/2 = 4", "found 8"}},
    {"{" TINY ", \"num_layers\": 30" SKIPARSE("dual_end", 2, 3) "}", OSP_ERR_FORMAT,
     {"'num_full_blocks'", "even", "found 3"}},
    {"{" TINY ", \"num_layers\": 30" SKIPARSE("dual_end", 2, 6) "}", OSP_ERR_FORMAT,
     {"'num_full_blocks'", "multiple of 4", "found 6"}},
    {"{" TINY_8 SKIPARSE("uniform", 2, 4) "}", OSP_ERR_FORMAT,
     {"'num_full_blocks'", "\"uniform\"", "found 4"}},
    {"{" TINY_8 SKIPARSE("dual_end", 1, 4) "}", OSP_ERR_FORMAT,
     {"'sparse_ratio'", "sparse ratio < 2", "found 1"}},
    /* OSP's schedules: every_k and an explicit list */
    {"{" TINY_8 EVERY_K(3) "}", OSP_ERR_MISSING, {"'sparse_ratio'", "\"every_k\""}},
    {"{" TINY_8 ", \"skiparse_model_type\": \"every_k\", \"sparse_ratio\": 2}", OSP_ERR_MISSING,
     {"missing 'every_k'", "\"every_k\""}},
    {"{" TINY_8 EVERY_K(0) ", \"sparse_ratio\": 2}", OSP_ERR_FORMAT, {"'every_k'", "found 0"}},
    {"{" TINY_8 EVERY_K(2) ", \"sparse_ratio\": 1}", OSP_ERR_FORMAT, {"sparse ratio < 2"}},
    {"{" TINY_8 SKIPARSE("dual_end", 2, 4) ", \"every_k\": 2}", OSP_ERR_FORMAT,
     {"'every_k'", "needs skiparse_model_type \"every_k\"", "found \"dual_end\""}},
    {"{" TINY_8 ", \"model_config\": {\"every_k\": 2}}", OSP_ERR_FORMAT,
     {"'model_config.every_k'", "found \"full\""}},
    {"{" TINY_4 ", \"skiparse_schedule\": [\"full\", \"token\", \"group\"]}", OSP_ERR_FORMAT,
     {"'skiparse_schedule'", "an array of 4 patterns", "an array of 3"}},
    {"{" TINY_4 ", \"skiparse_schedule\": \"FTGF\"}", OSP_ERR_FORMAT,
     {"'skiparse_schedule'", "\"FTGF\""}},
    {"{" TINY_4 ", \"skiparse_schedule\": [\"full\", \"token\", \"tokn\", \"full\"]}",
     OSP_ERR_FORMAT, {"'skiparse_schedule[2]'", "\"tokn\"", "\"group\""}},
    {"{" TINY_4 ", \"model_config\": {\"skiparse_schedule\": [0, 1, 2, 0]}}", OSP_ERR_FORMAT,
     {"'model_config.skiparse_schedule[0]'", "found 0"}},
    {"{" TINY_4 SKIPARSE("uniform", 2, 0) LIST_FTGF "}", OSP_ERR_FORMAT,
     {"'skiparse_schedule'", "needs skiparse_model_type \"list\"", "found \"uniform\""}},
    {"{" TINY_4 ", \"skiparse_model_type\": \"list\", \"sparse_ratio\": 2}", OSP_ERR_MISSING,
     {"missing 'skiparse_schedule'", "\"list\""}},
    {"{" TINY_4 LIST_FTGF "}", OSP_ERR_MISSING, {"missing 'sparse_ratio'", "\"list\""}},
};
/* clang-format on */

static int mentions(const char *message, const char *needle) {
  return !needle || strstr(message, needle);
}

static void test_errors(void) {
  for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
    const error_case *c = &error_cases[i];
    osp_model_config cfg = preset("wan2.1-t2v-1.3b"), before = cfg;
    osp_status status = parse(c->text, &cfg);
    const char *message = osp_last_error();
    int ok = status == c->status && strncmp(message, LABEL, strlen(LABEL)) == 0 &&
             !strchr(message, '\n');
    for (int k = 0; k < 3; k++) ok = ok && mentions(message, c->needles[k]);
    if (!ok) fprintf(stderr, "error case %zu: %s: %s\n", i, osp_status_name(status), message);
    CHECK(ok);
    CHECK(same_config(&cfg, &before)); /* a failed parse leaves *cfg alone */
  }

  /* jansson would skip a NUL byte between tokens; the parser refuses it. */
  static const char with_nul[] = "{" TINY_4 "\0}";
  osp_model_config cfg;
  CHECK(osp_config_parse(LABEL, with_nul, sizeof with_nul - 1, &cfg) == OSP_ERR_FORMAT);
  CHECK(strstr(osp_last_error(), "NUL") != NULL);
  CHECK(osp_config_parse(LABEL, NULL, 0, &cfg) == OSP_ERR_ARGUMENT);
}

/* osp_config_validate on hand-made configs: the status and the key it names. */
static void check_invalid(const osp_model_config *cfg, osp_status status, const char *key) {
  CHECK(osp_config_validate("hand-made", cfg) == status);
  CHECK(strstr(osp_last_error(), "hand-made") && strstr(osp_last_error(), key));
}

static void test_validate(void) {
  const osp_model_config good = preset("osp-next-1.3b");
  osp_model_config cfg = good;
  cfg.qk_norm = 0;
  check_invalid(&cfg, OSP_ERR_UNSUPPORTED, "'qk_norm'");
  cfg = good;
  cfg.dim = 1024;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'dim'");
  cfg = good;
  cfg.num_heads = 0;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'num_attention_heads'");
  cfg = good;
  cfg.eps = 0.0f;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'eps'");
  cfg = good;
  cfg.patch_size[2] = 17;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'patch_size[2]'");
  cfg = good;
  cfg.skiparse_model_type = OSP_SKIPARSE_FULL; /* with ratio 2 and 8 full blocks */
  check_invalid(&cfg, OSP_ERR_FORMAT, "\"full\"");
  cfg = good;
  cfg.skiparse_model_type = (osp_skiparse_type)7;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'skiparse_model_type'");

  /* The schedule must be the one its type derives, and the fields must follow from it. */
  cfg = good;
  cfg.schedule[5] = OSP_PATTERN_TOKEN;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'schedule[5]'");
  cfg = good;
  cfg.schedule[3] = 9;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'schedule[3]'");
  cfg = good;
  cfg.skiparse_model_type = OSP_SKIPARSE_LIST; /* the same blocks, given */
  CHECK(osp_config_validate("hand-made", &cfg) == OSP_OK);
  cfg.num_full_blocks = 6;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'num_full_blocks'");
  cfg = good;
  cfg.sparse_ratio = 1;
  check_invalid(&cfg, OSP_ERR_FORMAT, "sparse ratio < 2");
  cfg = good;
  cfg.skiparse_model_type = OSP_SKIPARSE_EVERY_K; /* with every_k 0 */
  check_invalid(&cfg, OSP_ERR_FORMAT, "'every_k'");
  cfg = preset("wan2.1-t2v-1.3b");
  cfg.sparse_ratio = 2;
  check_invalid(&cfg, OSP_ERR_FORMAT, "'sparse_ratio'");
}

static void test_load(void) {
  char path[] = "/tmp/osp_test_config_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, ORIGINAL_14B, strlen(ORIGINAL_14B)) == (ssize_t)strlen(ORIGINAL_14B));
  close(fd);
  osp_model_config cfg, expected = preset("wan2.1-t2v-14b");
  CHECK(osp_config_load(path, &cfg) == OSP_OK);
  CHECK(same_config(&cfg, &expected));
  unlink(path);
  CHECK(osp_config_load(path, &cfg) == OSP_ERR_IO);
  CHECK(strstr(osp_last_error(), path) != NULL);
  CHECK(osp_config_load("/tmp", &cfg) == OSP_ERR_IO); /* a directory opens but does not read */
}

/* ---- schedules (PAPER.md 5.9) ---- */

/* The schedule as one letter per block (F, T, G). */
typedef struct {
  char text[OSP_MAX_LAYERS + 1];
} schedule_text;

static schedule_text letters(const osp_model_config *cfg) {
  schedule_text s;
  osp_config_schedule_string(cfg, s.text, sizeof s.text);
  return s;
}

static int has_letters(const osp_model_config *cfg, const char *expected) {
  schedule_text s = letters(cfg);
  if (strcmp(s.text, expected) == 0) return 1;
  fprintf(stderr, "schedule %s, expected %s\n", s.text, expected);
  return 0;
}

#define TG_11 "TGTGTGTGTGTGTGTGTGTGTG"
#define RELEASED_1_3B "FFFF" TG_11 "FFFF"
#define RELEASED_14B \
  "FFFF" TG_11       \
  "TGTGTGTGTG"       \
  "FFFF"

/* PAPER.md 5.9's table of the released schedule (dual_end, sparse ratio 2, 8 full blocks): the
 * full blocks as two inclusive ranges; token-wise and group-wise blocks as first, last (step 2)
 * and count. */
typedef struct {
  const char *preset;
  int blocks;
  int full[2][2];
  int token[3], group[3];
} released_schedule;

static const released_schedule released[] = {
    {"osp-next-14b", 40, {{0, 3}, {36, 39}}, {4, 34, 16}, {5, 35, 16}},
    {"osp-next-1.3b", 30, {{0, 3}, {26, 29}}, {4, 24, 11}, {5, 25, 11}},
};

static int in_range(int block, const int range[2]) {
  return block >= range[0] && block <= range[1];
}

static int in_strided(int block, const int strided[3]) {
  return block >= strided[0] && block <= strided[1] && (block - strided[0]) % 2 == 0;
}

/* The pattern the table gives block i; -1 when it gives none. */
static int table_pattern(const released_schedule *t, int block) {
  if (in_range(block, t->full[0]) || in_range(block, t->full[1])) return OSP_PATTERN_FULL;
  if (in_strided(block, t->token)) return OSP_PATTERN_TOKEN;
  if (in_strided(block, t->group)) return OSP_PATTERN_GROUP;
  return -1;
}

static void check_released_schedule(const released_schedule *t) {
  osp_model_config cfg = preset(t->preset);
  CHECK(cfg.num_layers == t->blocks && has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 2, 8));
  int counts[3] = {0, 0, 0}, agree = 1;
  for (int i = 0; i < t->blocks; i++) {
    agree = agree && cfg.schedule[i] == table_pattern(t, i);
    if (cfg.schedule[i] < 3) counts[cfg.schedule[i]]++;
  }
  CHECK(agree);
  CHECK(counts[OSP_PATTERN_FULL] == 8 && counts[OSP_PATTERN_TOKEN] == t->token[2] &&
        counts[OSP_PATTERN_GROUP] == t->group[2]);
}

static void test_released_schedules(void) {
  for (size_t i = 0; i < sizeof released / sizeof released[0]; i++)
    check_released_schedule(&released[i]);
  osp_model_config small = preset("osp-next-1.3b"), large = preset("osp-next-14b");
  CHECK(has_letters(&small, RELEASED_1_3B) && has_letters(&large, RELEASED_14B));

  /* OSP-Next's keys nested in the original 14B file give the preset, schedule included. */
  char nested[sizeof ORIGINAL_14B + 128];
  int body = (int)(strrchr(ORIGINAL_14B, '}') - ORIGINAL_14B);
  snprintf(nested, sizeof nested,
           "%.*s, \"model_config\": {\"x\": 0" SKIPARSE("dual_end", 2, 8) "}}", body, ORIGINAL_14B);
  osp_model_config cfg;
  CHECK(parse(nested, &cfg) == OSP_OK);
  CHECK(same_config(&cfg, &large));

  /* Wan2.1: every block full. */
  osp_model_config wan = preset("wan2.1-t2v-1.3b");
  CHECK(has_letters(&wan, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"));
  wan = preset("wan2.1-t2v-14b");
  CHECK(strspn(letters(&wan).text, "F") == 40 && strlen(letters(&wan).text) == 40);
}

/* dit_check.py's dual_end: full blocks range(F//2) | range(L - F//2, L), others by parity. */
static schedule_text checker_dual_end(int layers, int full) {
  schedule_text s;
  for (int i = 0; i < layers; i++) {
    int at_an_end = i < full / 2 || i >= layers - full / 2;
    s.text[i] = at_an_end ? 'F' : (i % 2 == 0 ? 'T' : 'G');
  }
  s.text[layers] = '\0';
  return s;
}

/* Every config dit_check.py's random_case draws: L in {4, 8}, F in {0, 4} with F <= L/2, P in
 * {2, 3}. */
static void test_checker_schedules(void) {
  static const int layers[] = {4, 8}, fulls[] = {0, 4}, ratios[] = {2, 3};
  for (int l = 0; l < 2; l++)
    for (int f = 0; f < 2 && fulls[f] <= layers[l] / 2; f++)
      for (int p = 0; p < 2; p++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{" TINY
                 ", \"num_layers\": %d, \"skiparse_model_type\": \"dual_end\", "
                 "\"sparse_ratio\": %d, \"num_full_blocks\": %d}",
                 layers[l], ratios[p], fulls[f]);
        osp_model_config cfg;
        CHECK(parse(text, &cfg) == OSP_OK);
        CHECK(has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, ratios[p], fulls[f]));
        CHECK(has_letters(&cfg, checker_dual_end(layers[l], fulls[f]).text));
      }
  osp_model_config cfg;
  CHECK(parse("{" TINY_4 SKIPARSE("dual_end", 3, 0) "}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "TGTG"));
  CHECK(parse("{" TINY_8 SKIPARSE("dual_end", 2, 4) "}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FFTGTGFF"));
}

static void test_uniform_and_every_k(void) {
  osp_model_config cfg;
  CHECK(parse("{" TINY_8 SKIPARSE("uniform", 2, 0) "}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "TGTGTGTG") && has_schedule(&cfg, OSP_SKIPARSE_UNIFORM, 2, 0));

  /* k = 1: every block full, so the ratio is 1 whatever the file says (as for "full"). */
  CHECK(parse("{" TINY_8 EVERY_K(1) ", \"sparse_ratio\": 2}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FFFFFFFF") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 1, 8));
  CHECK(cfg.every_k == 1);
  CHECK(parse("{" TINY_8 EVERY_K(1) "}", &cfg) == OSP_OK); /* and needs none */
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 1, 8));

  /* Each run of sparse blocks starts token-wise; num_full_blocks counts the full ones. */
  CHECK(parse("{" TINY_8 EVERY_K(3) ", \"sparse_ratio\": 2}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FTGFTGFT") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 2, 3));
  CHECK(parse("{" TINY_8 EVERY_K(4) ", \"sparse_ratio\": 3}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FTGTFTGT") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 3, 2));
  /* k > L: only block 0 is full. */
  CHECK(parse("{" TINY_8 EVERY_K(20) ", \"sparse_ratio\": 2}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FTGTGTGT") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 2, 1));
  CHECK(cfg.every_k == 20);

  const char *nested = "{" TINY_8
                       ", \"model_config\": {\"skiparse_model_type\": \"every_k\", "
                       "\"every_k\": 2, \"sparse_ratio\": 3}}";
  CHECK(parse(nested, &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FTFTFTFT") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 3, 4));

  /* The other types keep every_k 0. */
  CHECK(parse("{" TINY_8 SKIPARSE("dual_end", 2, 4) "}", &cfg) == OSP_OK);
  CHECK(cfg.every_k == 0);
}

static void test_listed_schedules(void) {
  osp_model_config cfg;
  /* skiparse_schedule implies the type "list", which may also be named. */
  CHECK(parse("{" TINY_4 LIST_FTGF ", \"sparse_ratio\": 3}", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FTGF") && has_schedule(&cfg, OSP_SKIPARSE_LIST, 3, 2));
  osp_model_config named;
  CHECK(parse("{" TINY_4 LIST_FTGF ", \"sparse_ratio\": 3, \"skiparse_model_type\": \"list\"}",
              &named) == OSP_OK);
  CHECK(same_config(&cfg, &named));

  const char *by_letter =
      "{" TINY_4
      ", \"model_config\": {\"skiparse_schedule\": [\"T\", \"T\", \"G\", \"full\"], "
      "\"sparse_ratio\": 2}}";
  CHECK(parse(by_letter, &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "TTGF") && has_schedule(&cfg, OSP_SKIPARSE_LIST, 2, 1));

  /* A list of full blocks is dense: ratio 1. */
  const char *dense =
      "{" TINY
      ", \"num_layers\": 2, \"skiparse_schedule\": [\"full\", \"F\"], \"sparse_ratio\": 4}";
  CHECK(parse(dense, &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, "FF") && has_schedule(&cfg, OSP_SKIPARSE_LIST, 1, 2));
}

/* ---- the overrides ---- */

static const char SCHEDULE[] = "--schedule";

static osp_model_config overridden(const char *preset_name, const char *spec) {
  osp_model_config cfg = preset(preset_name);
  CHECK(osp_config_set_schedule(SCHEDULE, spec, &cfg) == OSP_OK);
  return cfg;
}

static void test_set_named_schedules(void) {
  /* Between Wan2.1 and OSP-Next: "dual_end" on a dense config takes F = 8 and P = 2. */
  const char *pairs[][2] = {{"wan2.1-t2v-1.3b", "osp-next-1.3b"},
                            {"wan2.1-t2v-14b", "osp-next-14b"}};
  for (int i = 0; i < 2; i++) {
    osp_model_config wan = preset(pairs[i][0]), next = preset(pairs[i][1]);
    osp_model_config sparse = overridden(pairs[i][0], "dual_end"),
                     dense = overridden(pairs[i][1], "full");
    CHECK(same_config(&sparse, &next));
    CHECK(same_config(&dense, &wan));
  }

  osp_model_config cfg = overridden("wan2.1-t2v-1.3b", "dual_end:4");
  CHECK(has_letters(&cfg, "FF" TG_11 "TGTGFF") && has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 2, 4));
  CHECK(osp_config_set_schedule(SCHEDULE, "dual_end", &cfg) == OSP_OK); /* keeps its F */
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 2, 4));
  cfg = overridden("wan2.1-t2v-1.3b", "dual_end:0");
  CHECK(has_letters(&cfg, TG_11 "TGTGTGTG") && has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 2, 0));

  /* uniform keeps the ratio; "dual_end" after it takes the released F again. */
  cfg = preset("osp-next-1.3b");
  CHECK(osp_config_set_sparse_ratio("--sparse-ratio", 3, &cfg) == OSP_OK);
  CHECK(osp_config_set_schedule(SCHEDULE, "uniform", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, TG_11 "TGTGTGTG") && has_schedule(&cfg, OSP_SKIPARSE_UNIFORM, 3, 0));
  CHECK(osp_config_set_schedule(SCHEDULE, "dual_end", &cfg) == OSP_OK);
  CHECK(has_letters(&cfg, RELEASED_1_3B) && has_schedule(&cfg, OSP_SKIPARSE_DUAL_END, 3, 8));

  cfg = overridden("wan2.1-t2v-1.3b", "every_k:3");
  CHECK(has_letters(&cfg, "FTGFTGFTGFTGFTGFTGFTGFTGFTGFTG"));
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 2, 10) && cfg.every_k == 3);
  cfg = overridden("wan2.1-t2v-1.3b", "every_k:100");
  CHECK(has_letters(&cfg, "F" TG_11 "TGTGTGT") && has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 2, 1));
  /* every_k:1 is dense, and so takes ratio 1; leaving every_k clears k. */
  cfg = overridden("osp-next-1.3b", "every_k:1");
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 1, 30) && cfg.every_k == 1);
  CHECK(osp_config_set_schedule(SCHEDULE, "uniform", &cfg) == OSP_OK);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_UNIFORM, 2, 0) && cfg.every_k == 0);

  /* A small model has no room for the released F: "dual_end" alone asks for dual_end:F. */
  osp_model_config tiny, before;
  CHECK(parse("{" TINY_8 "}", &tiny) == OSP_OK);
  before = tiny;
  CHECK(osp_config_set_schedule(SCHEDULE, "dual_end", &tiny) == OSP_ERR_ARGUMENT);
  CHECK(strstr(osp_last_error(), "dual_end:F") && strstr(osp_last_error(), "num_layers/2 = 4"));
  CHECK(same_config(&tiny, &before));
  CHECK(osp_config_set_schedule(SCHEDULE, "dual_end:4", &tiny) == OSP_OK);
  CHECK(has_letters(&tiny, "FFTGTGFF") && has_schedule(&tiny, OSP_SKIPARSE_DUAL_END, 2, 4));
}

/* A list of pattern names from a schedule's letters: "full,token,...". */
static void spell_out(const char *letter_list, char *out, size_t size) {
  static const char *const names[] = {"full", "token", "group"};
  out[0] = '\0';
  for (size_t i = 0; letter_list[i]; i++) {
    size_t used = strlen(out);
    int pattern = (int)(strchr("FTG", letter_list[i]) - "FTG");
    snprintf(out + used, size - used, "%s%s", i ? "," : "", names[pattern]);
  }
}

static void test_set_listed_schedules(void) {
  const osp_model_config next = preset("osp-next-1.3b");
  char words[256], single_letters[64];
  spell_out(RELEASED_1_3B, words, sizeof words);
  for (size_t i = 0; i < strlen(RELEASED_1_3B); i++) {
    single_letters[2 * i] = RELEASED_1_3B[i];
    single_letters[2 * i + 1] = ',';
  }
  single_letters[2 * strlen(RELEASED_1_3B) - 1] = '\0';
  /* The letters osp_config_schedule_string prints read back, as do words and comma letters. */
  const char *forms[] = {RELEASED_1_3B, words, single_letters};
  for (int i = 0; i < 3; i++) {
    osp_model_config cfg = overridden("wan2.1-t2v-1.3b", forms[i]);
    CHECK(has_schedule(&cfg, OSP_SKIPARSE_LIST, 2, 8));
    CHECK(memcmp(cfg.schedule, next.schedule, sizeof cfg.schedule) == 0);
  }
  osp_model_config cfg = overridden("osp-next-1.3b", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFF");
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_LIST, 1, 30));
  cfg = overridden("osp-next-1.3b", "GTTTTTTTTTTTTTTTTTTTTTTTTTTTTF");
  CHECK(has_letters(&cfg, "GTTTTTTTTTTTTTTTTTTTTTTTTTTTTF") &&
        has_schedule(&cfg, OSP_SKIPARSE_LIST, 2, 1));
  /* One pattern name alone puts every block in it. */
  cfg = overridden("wan2.1-t2v-1.3b", "token");
  CHECK(has_letters(&cfg, "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTT") && has_schedule(&cfg, OSP_SKIPARSE_LIST, 2, 0));
  cfg = overridden("osp-next-1.3b", "group");
  CHECK(has_letters(&cfg, "GGGGGGGGGGGGGGGGGGGGGGGGGGGGGG") && has_schedule(&cfg, OSP_SKIPARSE_LIST, 2, 0));
}

typedef struct {
  const char *preset, *spec;
  const char *needles[3]; /* each must appear in the message, beside the label */
} override_error;

/* clang-format off */
static const override_error schedule_errors[] = {
    {"wan2.1-t2v-1.3b", "dual_edn", {"unknown schedule \"dual_edn\"", "every_k:K", "\"FTG...\""}},
    {"wan2.1-t2v-1.3b", "", {"unknown schedule \"\""}},
    {"wan2.1-t2v-1.3b", "list", {"unknown schedule \"list\""}},
    {"wan2.1-t2v-1.3b", "tokens", {"unknown schedule \"tokens\""}},
    {"osp-next-1.3b", "dual_end:40", {"'num_full_blocks'", "<= num_layers/2 = 15", "found 40"}},
    {"osp-next-1.3b", "dual_end:3", {"'num_full_blocks'", "even", "found 3"}},
    {"osp-next-1.3b", "dual_end:6", {"'num_full_blocks'", "multiple of 4", "found 6"}},
    {"osp-next-1.3b", "dual_end:-4", {"\"dual_end:-4\"", "whole number", "found \"-4\""}},
    {"osp-next-1.3b", "dual_end:8x", {"whole number", "\"8x\""}},
    {"osp-next-1.3b", "dual_end:", {"whole number"}},
    {"osp-next-1.3b", "dual_end:1234567890", {"whole number"}},
    {"osp-next-1.3b", "every_k", {"every_k:K"}},
    {"osp-next-1.3b", "every_k:0", {"'every_k'", "found 0"}},
    {"osp-next-1.3b", "every_k:2000", {"'every_k'", "[1, 1024]", "found 2000"}},
    {"osp-next-1.3b", "uniform:0", {"\"uniform\" takes no number"}},
    {"osp-next-1.3b", "full:2", {"\"full\" takes no number"}},
    {"osp-next-1.3b", "full,token,group", {"expected 30 patterns", "found 3"}},
    {"osp-next-1.3b", "FFTG", {"expected 30 patterns", "found 4"}},
    {"osp-next-1.3b", "full,full,full,full,token,tokn,token,group,token,group,token,group,token,"
                      "group,token,group,token,group,token,group,token,group,token,group,token,"
                      "group,full,full,full,full",
     {"block 5", "unknown pattern \"tokn\"", "\"group\""}},
    {"osp-next-14b", ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
     {"block 0", "unknown pattern \"\""}},
};
/* clang-format on */

static int names_error(const char *label, const char *const needles[3]) {
  const char *message = osp_last_error();
  int ok = strncmp(message, label, strlen(label)) == 0 && !strchr(message, '\n');
  for (int k = 0; k < 3; k++) ok = ok && (!needles[k] || strstr(message, needles[k]));
  if (!ok) fprintf(stderr, "message: %s\n", message);
  return ok;
}

static void test_set_schedule_errors(void) {
  for (size_t i = 0; i < sizeof schedule_errors / sizeof schedule_errors[0]; i++) {
    const override_error *e = &schedule_errors[i];
    osp_model_config cfg = preset(e->preset), before = cfg;
    CHECK(osp_config_set_schedule(SCHEDULE, e->spec, &cfg) == OSP_ERR_ARGUMENT);
    CHECK(names_error(SCHEDULE, e->needles));
    CHECK(same_config(&cfg, &before)); /* a failed override leaves *cfg alone */
  }
  /* OSP-Next's rule that L is even, for a sparse span between full ends. */
  osp_model_config odd;
  CHECK(parse("{" TINY ", \"num_layers\": 7}", &odd) == OSP_OK);
  CHECK(osp_config_set_schedule(SCHEDULE, "uniform", &odd) == OSP_ERR_ARGUMENT);
  CHECK(names_error(SCHEDULE, (const char *const[3]){"'num_layers'", "even", "found 7"}));
  CHECK(osp_config_set_schedule(SCHEDULE, "every_k:2", &odd) == OSP_OK); /* OSP's own: any L */
  CHECK(has_letters(&odd, "FTFTFTF"));

  CHECK(osp_config_set_schedule(SCHEDULE, NULL, &odd) == OSP_ERR_ARGUMENT);
  CHECK(osp_config_set_schedule(SCHEDULE, "full", NULL) == OSP_ERR_ARGUMENT);
}

static void check_ratio_error(const char *preset_name, int ratio, const char *const needles[3]) {
  static const char label[] = "--sparse-ratio";
  osp_model_config cfg = preset(preset_name), before = cfg;
  CHECK(osp_config_set_sparse_ratio(label, ratio, &cfg) == OSP_ERR_ARGUMENT);
  CHECK(names_error(label, needles));
  CHECK(same_config(&cfg, &before));
}

static void test_set_sparse_ratio(void) {
  osp_model_config cfg = preset("osp-next-14b"), expected = cfg;
  CHECK(osp_config_set_sparse_ratio("--sparse-ratio", 16, &cfg) == OSP_OK);
  expected.sparse_ratio = 16;
  CHECK(same_config(&cfg, &expected));
  check_ratio_error("osp-next-14b", 1,
                    (const char *const[3]){"'sparse_ratio'", "sparse ratio < 2", "found 1"});
  check_ratio_error("osp-next-14b", 0, (const char *const[3]){"sparse ratio < 2", "found 0"});
  check_ratio_error("osp-next-14b", 17, (const char *const[3]){"[2, 16]", "found 17"});

  /* A schedule without sparse blocks keeps ratio 1: set a sparse schedule first. */
  cfg = preset("wan2.1-t2v-14b");
  CHECK(osp_config_set_sparse_ratio("--sparse-ratio", 1, &cfg) == OSP_OK);
  check_ratio_error("wan2.1-t2v-14b", 2,
                    (const char *const[3]){"'sparse_ratio'", "without sparse blocks", "found 2"});
  CHECK(osp_config_set_schedule(SCHEDULE, "every_k:2", &cfg) == OSP_OK);
  CHECK(osp_config_set_sparse_ratio("--sparse-ratio", 3, &cfg) == OSP_OK);
  CHECK(has_schedule(&cfg, OSP_SKIPARSE_EVERY_K, 3, 20));
  CHECK(osp_config_set_sparse_ratio("--sparse-ratio", 3, NULL) == OSP_ERR_ARGUMENT);
}

static void test_schedule_string(void) {
  osp_model_config cfg = preset("osp-next-1.3b");
  char buffer[8] = "xxxxxxx";
  CHECK(osp_config_schedule_string(&cfg, buffer, 6) == buffer && strcmp(buffer, "FFFFT") == 0);
  CHECK(osp_config_schedule_string(&cfg, buffer, 1) == buffer && buffer[0] == '\0');
  buffer[0] = 'x';
  CHECK(osp_config_schedule_string(&cfg, buffer, 0) == buffer && buffer[0] == 'x');
  CHECK(osp_config_schedule_string(&cfg, NULL, 8) == NULL);
  cfg.schedule[2] = 7; /* not a pattern */
  CHECK(strcmp(osp_config_schedule_string(&cfg, buffer, sizeof buffer), "FF?FTGT") == 0);
}

int main(void) {
  test_presets();
  test_published_files();
  test_defaults();
  test_mixed_spellings();
  test_skiparse_keys();
  test_errors();
  test_validate();
  test_load();
  test_released_schedules();
  test_checker_schedules();
  test_uniform_and_every_k();
  test_listed_schedules();
  test_set_named_schedules();
  test_set_listed_schedules();
  test_set_schedule_errors();
  test_set_sparse_ratio();
  test_schedule_string();
  return test_summary("test_config");
}
