/* A plain main() for the harnesses of t/fuzz/: each argument is a file,
 * or a directory whose files are all replayed, through
 * LLVMFuzzerTestOneInput. Any C compiler builds a harness with it, without
 * libFuzzer; make test replays the seed corpus so. A finding aborts (a
 * non-zero exit status), as does a file that cannot be read. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static unsigned long replay_count;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL) {
                abort();
            }
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        fprintf(stderr, "%s: read error\n", path);
        exit(2);
    }
    fclose(f);
    /* Exactly len bytes, as libFuzzer hands them over. */
    {
        unsigned char *exact = fuzz_dup(buf, len);
        free(buf);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    replay_count++;
}

static void replay_path(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    while ((e = readdir(dir)) != NULL) {
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *child;
        if (e->d_name[0] == '.') {
            continue;
        }
        child = malloc(n);
        if (child == NULL) {
            abort();
        }
        snprintf(child, n, "%s/%s", path, e->d_name);
        replay_path(child);
        free(child);
    }
    closedir(dir);
}

int main(int argc, char **argv)
{
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        replay_path(argv[i]);
    }
    if (replay_count == 0) {
        fprintf(stderr, "%s: no input to replay\n", argv[0]);
        return 1;
    }
    printf("%s: %lu inputs replayed, no finding\n", argv[0], replay_count);
    return 0;
}
