/* osp: the command-line front of the engine. Each subcommand lives in its own cmd_*.c file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "cpu/blas.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} commands[] = {
    {"generate", cmd_generate, "generate a video from a prompt (the built-in shapes model by default)"},
    {"convert", cmd_convert, "convert a PyTorch checkpoint (.pth) into safetensors (Wan2.1's T5 and VAE files)"},
    {"merge-lora", cmd_merge_lora, "merge LoRAs (diffusers, PEFT, original Wan, ComfyUI, musubi) into a DiT's weights file"},
    {"quant", cmd_quant, "apply HiF8 quantize-dequantize to every tensor of a file"},
    {"info", cmd_info, "list the tensors of a safetensors file and the model it holds"},
    {"dit", cmd_dit, "run one forward pass of the Wan2.1 / OSP-Next DiT (and its backward)"},
    {"train", cmd_train, "train or fine-tune the DiT with flow matching (train.json)"},
    {"bench", cmd_bench, "time ops, blocks and whole forwards against the device's peak"},
    {"vae-decode", cmd_vae_decode, "decode latents with the Wan2.1 VAE into a video (safetensors in and out)"},
    {"vae-encode", cmd_vae_encode, "encode a video with the Wan2.1 VAE into normalised latents"},
    {"eval", cmd_eval, "ShapesBench: score a shapes-world video against its prompt"},
    {"tokenize", cmd_tokenize, "print a text's token ids with a model's tokenizer (umT5's SentencePiece)"},
    {"encode-text", cmd_encode_text, "encode a prompt with the umT5 text encoder into the DiT's context"},
};

static void print_help(FILE *out) {
  fprintf(out,
          "usage: osp COMMAND [options]\n\n"
          "OSP %s: a C engine for sparse video diffusion transformers (Wan2.1, OSP-Next).\n\n"
          "commands:\n",
          OSP_VERSION);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\n'osp COMMAND --help' describes a command. OSP_LOG=debug|info|warn|error sets the log "
          "level; OMP_NUM_THREADS the CPU threads.\n");
}

int main(int argc, char **argv) {
  osp_cpu_blas_use_best_kernels(argv);
  if (argc < 2) {
    print_help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    print_help(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("osp %s\n", OSP_VERSION);
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
  fprintf(stderr, "osp: error: unknown command '%s' (see 'osp --help')\n", argv[1]);
  return CLI_EXIT_USAGE;
}
