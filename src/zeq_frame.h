/* WebSocket (RFC 6455) framing for mod_zeq_e2e: an incremental reader that
 * turns a byte stream into control frames and whole (reassembled) messages,
 * and a frame writer. Pure C11, no httpd or APR header, malloc only: it can
 * be unit-tested and fuzzed alone.
 *
 * Protocol (docs/PROTOCOL.md): every data message travels as one binary
 * frame whose payload is an envelope of type || message, type 0x01 text,
 * 0x02 binary. Control frames pass unchanged. */
#ifndef ZEQ_FRAME_H
#define ZEQ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define ZEQ_FRAME_CONT   0x0
#define ZEQ_FRAME_TEXT   0x1
#define ZEQ_FRAME_BINARY 0x2
#define ZEQ_FRAME_CLOSE  0x8
#define ZEQ_FRAME_PING   0x9
#define ZEQ_FRAME_PONG   0xA

#define ZEQ_FRAME_MSG_TEXT   0x01   /* type byte inside the envelope */
#define ZEQ_FRAME_MSG_BINARY 0x02
#define ZEQ_FRAME_MSG_END    0x03   /* v2: the end of one side's messages */
/* The opcode a message event carries for the end message (not RFC 6455's:
 * it never appears in a frame header). */
#define ZEQ_FRAME_MSG_END_OPCODE 0x103

#define ZEQ_FRAME_HEADER_MAX 14

/* Close codes used by the module. */
#define ZEQ_FRAME_CLOSE_PROTOCOL 1002
#define ZEQ_FRAME_CLOSE_POLICY   1008
#define ZEQ_FRAME_CLOSE_TOO_BIG  1009
#define ZEQ_FRAME_CLOSE_INTERNAL 1011

typedef enum {
    ZEQ_FRAME_NEED_MORE = 0,  /* no complete event buffered */
    ZEQ_FRAME_EV_CONTROL,     /* a control frame: raw bytes as received */
    ZEQ_FRAME_EV_MESSAGE,     /* a whole data message, unmasked */
    ZEQ_FRAME_EV_ERROR        /* a protocol error or an oversized message */
} zeq_frame_event_type;

typedef struct {
    zeq_frame_event_type type;
    int opcode;                  /* CONTROL: its opcode; MESSAGE: text/binary */
    const unsigned char *data;   /* CONTROL: the raw frame; MESSAGE: payload */
    size_t len;
    int close_code;              /* ERROR: the close code to answer with */
} zeq_frame_event;

typedef struct {
    unsigned char *buf;          /* received bytes not yet consumed */
    size_t len, cap, start;
    unsigned char *msg;          /* the message being reassembled */
    size_t msg_len, msg_cap;
    int msg_opcode;              /* 0: no message in progress */
    size_t max_message;          /* payload bytes allowed per message */
    int require_mask;            /* set for a client's frames (RFC 6455 5.1) */
    int failed;
} zeq_frame_reader;

/* Initialises a reader; max_message bounds one message's payload. Set
 * require_mask afterwards to refuse unmasked frames (1002). */
void zeq_frame_reader_init(zeq_frame_reader *rd, size_t max_message);
/* Frees the reader's buffers (and zeroes them: they held plaintext). */
void zeq_frame_reader_free(zeq_frame_reader *rd);
/* Appends received bytes: 0, or -1 when out of memory. */
int zeq_frame_reader_feed(zeq_frame_reader *rd, const unsigned char *data,
                          size_t len);
/* Takes the next event. Pointers in ev stay valid until the next call of
 * feed or next. After an ERROR event the reader stays failed. */
void zeq_frame_reader_next(zeq_frame_reader *rd, zeq_frame_event *ev);
/* True when bytes of an incomplete frame or message are buffered. */
int zeq_frame_reader_pending(const zeq_frame_reader *rd);

/* Writes a frame header for a final frame of opcode and payload length len;
 * mask (4 bytes) or NULL for an unmasked frame. Returns its length. */
size_t zeq_frame_write_header(unsigned char out[ZEQ_FRAME_HEADER_MAX],
                              int opcode, const unsigned char *mask,
                              uint64_t len);
/* XORs data with mask, starting at offset into the 4-byte key. */
void zeq_frame_mask(unsigned char *data, size_t len,
                    const unsigned char mask[4], size_t offset);
/* Writes an unmasked close frame with code (4 bytes). */
size_t zeq_frame_close(unsigned char out[4], int code);

/* The scanner of an HTTP/1.x response head that comes before the frames
 * (the answer to an opening): it finds the blank line that ends the head,
 * whether lines end in CRLF or in a bare LF (which clients accept), and
 * keeps the first bytes for the status. */
typedef struct {
    unsigned char first[16];     /* the head's first bytes */
    size_t first_len;
    size_t len;                  /* bytes of the head scanned so far */
    int state;                   /* 0 in a line, 1 after LF, 2 after LF CR,
                                  * 3 the head is complete */
} zeq_frame_head;

void zeq_frame_head_reset(zeq_frame_head *h);
/* Scans data; returns the offset just past the head's blank line, or len
 * when the head goes on (h->state is then below 3). */
size_t zeq_frame_head_scan(zeq_frame_head *h, const unsigned char *data,
                           size_t len);
/* The status code of a complete head; 0 when it is no HTTP/1.x status
 * line. */
int zeq_frame_head_status(const zeq_frame_head *h);

#endif
