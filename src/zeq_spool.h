/* The spool of a v1 response envelope: holds the ciphertext of a body
 * until its tag is known (the tag precedes the ciphertext on the wire), so
 * that a stalled reader pins little memory; and the spool of a large
 * request body's ciphertext while it is verified (zeq_body.h). Ciphertext stays in memory up
 * to ZEQ_SPOOL_MEMORY bytes per response (and while the process's
 * spools together hold under ZEQ_SPOOL_PROCESS_MEMORY), beyond that in an
 * unlinked temporary file: ciphertext is not secret, plaintext never
 * touches the disk. The ciphertext of a body of at most ZEQ_SPOOL_WHOLE
 * bytes may stay in memory whole (zeq_spool_add_whole: a small static
 * file read and encrypted once). A body region read from a file (a larger
 * static file's FILE bucket) is not stored at all: its ciphertext is
 * produced again from the file, at its keystream offset, when the bucket
 * is read.
 *
 * APR, APR-util and libcrypto only (no httpd header): unit-tested alone. */
#ifndef ZEQ_SPOOL_H
#define ZEQ_SPOOL_H

#include "apr_buckets.h"
#include "apr_file_io.h"

#include "zeq_envelope.h"

#define ZEQ_SPOOL_MEMORY          (64 * 1024)
#define ZEQ_SPOOL_PROCESS_MEMORY  (32 * 1024 * 1024)
/* The largest body whose ciphertext a response may hold whole in memory
 * (zeq_spool_add_whole): a static file of at most this size is read and
 * encrypted once. */
#define ZEQ_SPOOL_WHOLE           (1024 * 1024)

typedef struct zeq_spool zeq_spool;

/* A spool in pool p for the body of an envelope sealed with key and iv
 * (copied, zeroed when p is cleared; both NULL for a spool that takes no
 * file region). tmpdir: where spill files go (NULL: the system's temporary
 * directory). */
zeq_spool *zeq_spool_create(apr_pool_t *p, apr_bucket_alloc_t *list,
                            const unsigned char key[ZEQ_KEY_LEN],
                            const unsigned char iv[ZEQ_ENVELOPE_IV_LEN],
                            const char *tmpdir);
/* Appends len bytes of ciphertext that follow what the spool holds; takes
 * buf (malloc'd) in every case. */
apr_status_t zeq_spool_add(zeq_spool *sp, unsigned char *buf, apr_size_t len);
/* The same for the ciphertext of a body of at most ZEQ_SPOOL_WHOLE bytes,
 * kept whole: in memory up to ZEQ_SPOOL_WHOLE bytes for this spool (not
 * ZEQ_SPOOL_MEMORY), while the process's spools hold under
 * ZEQ_SPOOL_PROCESS_MEMORY; spilled as zeq_spool_add does beyond. */
apr_status_t zeq_spool_add_whole(zeq_spool *sp, unsigned char *buf,
                                 apr_size_t len);
/* What a file region's bucket calls when reading it at send time fails or
 * gives fewer bytes than the envelope's cipher saw (the file changed
 * between the two passes): at is the region's offset in the ciphertext,
 * rv why (APR_EOF: the file is shorter; APR_EGENERAL also when the
 * keystream failed). The body sent is then cut and its envelope does not
 * open. */
typedef void zeq_spool_cut_fn(void *baton, apr_off_t at, apr_status_t rv);
/* Sets it for the regions added after (baton lives as long as they do). */
void zeq_spool_on_cut(zeq_spool *sp, zeq_spool_cut_fn *fn, void *baton);
/* Appends the ciphertext of the plaintext at [offset, offset + len) of fd,
 * whose bytes the caller has just passed through the envelope's cipher (so
 * its tag covers them): it is produced again from fd when the bucket is
 * read. fd must stay open as long as the buckets live. */
apr_status_t zeq_spool_add_file(zeq_spool *sp, apr_file_t *fd,
                                apr_off_t offset, apr_off_t len);
/* Bytes of ciphertext held so far. */
apr_off_t zeq_spool_length(const zeq_spool *sp);
/* Moves the whole ciphertext into bb, in order. */
apr_status_t zeq_spool_drain(zeq_spool *sp, apr_bucket_brigade *bb);
/* Drops what the spool holds. */
void zeq_spool_discard(zeq_spool *sp);

#endif
