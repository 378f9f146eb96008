/* The subcommands of `osp`: each takes the arguments after its name and returns an exit code. */
#ifndef OSP_TOOLS_COMMANDS_H
#define OSP_TOOLS_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_dit(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_encode_text(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quant(int argc, char **argv);
int cmd_merge_lora(int argc, char **argv);
int cmd_vae_decode(int argc, char **argv);
int cmd_vae_encode(int argc, char **argv);

#endif
