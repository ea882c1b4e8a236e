// The tests' own protocol v2 code (client/test/v2.mjs, node:crypto) against
// the test vectors of docs/PROTOCOL.md section 18.13, computed with Perl
// CryptX: the judge of the wire is checked before it judges anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  b64url, fromB64url, ecdh, sessionKeys, pskOf, transcript, requestAAD, responseAAD, wsAAD,
  sealMessage, openMessage, openMessageDetail, sealedLength,
} from './v2.mjs';

const hex = (h) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const bytes = (from, to) => Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i));
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

const SID = '4OHi4-Tl5ufo6err7O3u7_Dx8vP09fb3-Pn6-_z9_v8';
const CN = bytes(0x00, 0x1f).toString('hex');
const SN = bytes(0x20, 0x3f).toString('hex');
const client = ecdh(Buffer.alloc(32, 0xc1));
const server = ecdh(Buffer.alloc(32, 0x5e));
const keys = sessionKeys(client.computeSecret(server.getPublicKey()), CN, SN);

/** Every single-bit flip of message must make opening fail. */
function assertEveryFlipFails(key, aad, message) {
  for (let i = 0; i < message.length; i++) {
    for (let bit = 0; bit < 8; bit += 7) {
      const m = Buffer.from(message);
      m[i] ^= 1 << bit;
      assert.throws(() => openMessage(key, aad, m), undefined, `byte ${i} bit ${bit} flipped still opens`);
    }
  }
}

describe('the tests\' v2 code against PROTOCOL.md 18.13', () => {
  it('derives the points, Z, the keys, the PSK keys and the transcript', () => {
    assert.equal(client.getPublicKey().toString('hex'), '04991498c2ef7f1ca5fd7f1d2ee033dc0aed84745da9b5ebb60a7d854307ebf9964a48ccf94fa5f206b0550e62aad49e4a0ec26dcb562201c4dd8bec6d11d39f44');
    assert.equal(b64url(client.getPublicKey()), 'BJkUmMLvfxyl_X8dLuAz3ArthHRdqbXrtgp9hUMH6_mWSkjM-U-l8gawVQ5iqtSeSg7CbctWIgHE3YvsbRHTn0Q');
    assert.equal(b64url(server.getPublicKey()), 'BK4vWF4kt3Vw4xyRCC48c_QDXx_kspdESxoblGmWaOkPNiKED6aecl06K-YWimd5roNLPPkvhmNw8HUwYEGIAa0');
    assert.equal(client.computeSecret(server.getPublicKey()).toString('hex'), '8d5826830f6a7065b5d26f5bf75f492425ca4de6a4bda1a5c9fc18df2cfb2d8f');
    assert.equal(keys.c2s.toString('hex'), '591ba64c8dce53bf8b51b963a2c7efb93c64a5ec8d726870122736957d1facf2');
    assert.equal(keys.s2c.toString('hex'), '439942400a9f29f77411a439afe825d98776a4f1e45c8317490d279a4bf4b2fd');
    const psk = pskOf('zeq-e2e test secret');
    assert.equal(psk.toString('hex'), '1f57fc1a6c3672125176d4e1202381c1eebae5ebd5db476b22d16a1af35bcb10');
    const pk = sessionKeys(client.computeSecret(server.getPublicKey()), CN, SN, psk);
    assert.equal(pk.c2s.toString('hex'), '9e77f19ceaa93be214282541e92b90a8448014c9993373e15026329f6d06b905');
    assert.equal(pk.s2c.toString('hex'), 'ba3429cfbac35351fd92cd18582b027b4e424908f5faa37ca0f618c1ea3a8ce6');
    const t = transcript(CN, SN, client.getPublicKey(), server.getPublicKey(), SID);
    assert.equal(t.length, 257);
    assert.equal(sha256(t), 'bb41b2f18457f7a34110873adb1e1dce0b6435f911c86a3fc92f9fe7f8ea56c2');
  });

  it('seals and opens the request, the seal, the answer and the WebSocket message', () => {
    const aad = requestAAD(SID, 0, 'POST', '/cgi-bin/echo?x=1', 'application/json');
    assert.equal(aad.toString('hex'), '7a65712d6532652f32207265717565737400344f4869342d546c3575666f36657272374f3375375f447838765030396662332d506e362d5f7a395f7638003000504f5354002f6367692d62696e2f6563686f3f783d31006170706c69636174696f6e2f6a736f6e');
    const req = sealMessage(keys.c2s, aad, '{"hello":"world"}', { nonceBase: bytes(0, 11) });
    assert.equal(req.toString('hex'), '02000102030405060708090a0b80000011f6a495d4db02ba63b3d57647be7d8ae3d25866d005eb7fc0fa34a4aa0a8683fa4f');
    assert.equal(openMessage(keys.c2s, aad, req).toString(), '{"hello":"world"}');
    assertEveryFlipFails(keys.c2s, aad, req);
    assert.throws(() => openMessage(keys.c2s, requestAAD(SID, 1, 'POST', '/cgi-bin/echo?x=1', 'application/json'), req));
    assert.throws(() => openMessage(keys.s2c, aad, req));

    const gaad = requestAAD(SID, 1, 'GET', '/api/items?page=2');
    const seal = sealMessage(keys.c2s, gaad, '', { nonceBase: bytes(0xa0, 0xab) });
    assert.equal(b64url(seal), 'AqChoqOkpaanqKmqq4AAAACoFZZ-1DPQg4gFB41pILLF');
    assert.equal(openMessage(keys.c2s, gaad, fromB64url('AqChoqOkpaanqKmqq4AAAACoFZZ-1DPQg4gFB41pILLF')).length, 0);

    const raad = responseAAD(SID, 0, 200, 'application/json', '');
    assert.equal(raad.toString('hex'), '7a65712d6532652f3220726573706f6e736500344f4869342d546c3575666f36657272374f3375375f447838765030396662332d506e362d5f7a395f7638003000323030006170706c69636174696f6e2f6a736f6e00');
    const res = sealMessage(keys.s2c, raad, '{"ok":true}', { nonceBase: bytes(0x10, 0x1b) });
    assert.equal(res.toString('hex'), '02101112131415161718191a1b8000000b1dfb60cdc5d7116bef1f72bb73dede1d6a4b4087452f7cbe4e4fa1');

    let big = Buffer.alloc(0);
    while (big.length < 40000) {
      const o = Buffer.alloc(4);
      o.writeUInt32BE(big.length);
      big = Buffer.concat([big, createHash('sha256').update(Buffer.concat([Buffer.from('v2 big'), o])).digest()]);
    }
    big = big.subarray(0, 40000);
    assert.equal(sha256(big), '97efb463981350146c5efb934a1baf5641c9073cc289ee5e0b4b3a4b021f8a0b');
    const sealedBig = sealMessage(keys.s2c, raad, big, { nonceBase: bytes(0x10, 0x1b) });
    assert.equal(sealedBig.length, 40073);
    assert.equal(sealedLength(40000), 40073);
    assert.equal(sha256(sealedBig), '61bd5e1f97ee5098df1780845cedafb8b33b9451386ee99ab624b3b02732f174');
    assert.deepEqual(openMessageDetail(keys.s2c, raad, sealedBig).records, [16384, 16384, 7232]);

    const waad = wsAAD(SID, 2, 'c2s', 0);
    assert.equal(waad.toString('hex'), '7a65712d6532652f3220777300344f4869342d546c3575666f36657272374f3375375f447838765030396662332d506e362d5f7a395f76380032006332730030');
    const ws = sealMessage(keys.c2s, waad, Buffer.from('\x01hello', 'latin1'), { nonceBase: bytes(0xa0, 0xab) });
    assert.equal(ws.toString('hex'), '02a0a1a2a3a4a5a6a7a8a9aaab80000006c07ada0ba9cd2b41e1a298927349449f4503b287aed3');
  });

  it('refuses truncated messages, trailing bytes and empty records out of place only where the format says', () => {
    const aad = responseAAD(SID, 3, 200);
    const m = sealMessage(keys.s2c, aad, Buffer.alloc(40, 7), { records: [0, 10, 0, 30] });
    assert.deepEqual(openMessageDetail(keys.s2c, aad, m).records, [0, 10, 0, 30]);
    assert.throws(() => openMessage(keys.s2c, aad, m.subarray(0, m.length - 1)));
    assert.throws(() => openMessage(keys.s2c, aad, Buffer.concat([m, Buffer.from([0])])));
    const head = sealMessage(keys.s2c, aad, Buffer.alloc(10, 7), { records: [10, 0] });
    assert.throws(() => openMessage(keys.s2c, aad, head.subarray(0, 13 + 4 + 10 + 16)), /ends before its final record/);
  });
});
