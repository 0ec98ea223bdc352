// Reference ids for the llama2.c tokenizer, computed by llama2.c's own
// bpe_encode (run.c of karpathy/llama2.c, MIT license, not included here).
// Build: cc -O2 -DLLAMA2C_ENCODE='"/path/to/file/with/bpe_encode.c"' llama2c_ref.c -o llama2c_ref
// Usage: llama2c_ref tok512.bin texts.bin > ids.txt
// texts.bin holds records of a little-endian uint32 byte length and the
// bytes; the output has one line of space-separated ids per record.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include LLAMA2C_ENCODE

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s tokenizer.bin texts.bin\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 1; }
    unsigned int max_len;
    if (fread(&max_len, 4, 1, f) != 1) return 1;
    int cap = 1024, n = 0;
    char **vocab = malloc(cap * sizeof(char *));
    float *scores = malloc(cap * sizeof(float));
    for (;;) {
        float score; int len;
        if (fread(&score, 4, 1, f) != 1) break;
        if (fread(&len, 4, 1, f) != 1) return 1;
        if (n == cap) { cap *= 2; vocab = realloc(vocab, cap * sizeof(char *)); scores = realloc(scores, cap * sizeof(float)); }
        vocab[n] = malloc(len + 1);
        if (len > 0 && fread(vocab[n], len, 1, f) != 1) return 1;
        vocab[n][len] = 0;
        scores[n] = score;
        n++;
    }
    fclose(f);
    FILE *t = fopen(argv[2], "rb");
    if (!t) { perror(argv[2]); return 1; }
    uint32_t tl;
    while (fread(&tl, 4, 1, t) == 1) {
        char *text = malloc(tl + 1);
        if (tl > 0 && fread(text, tl, 1, t) != 1) return 1;
        text[tl] = 0;
        int *tokens = malloc((tl + 2) * sizeof(int) * 4);
        int nt = 0;
        bpe_encode(text, vocab, scores, n, max_len, tokens, &nt);
        for (int i = 0; i < nt; i++) printf(i ? " %d" : "%d", tokens[i]);
        printf("\n");
        free(tokens);
        free(text);
    }
    return 0;
}
