// A consumer of the npm package, type-checked by package.test.mjs with
// tsc --strict (tsconfig.json) against the package installed from its
// tarball: every export used with the types a consumer writes, and what the
// declarations must refuse, each under an expect-error directive (tsc fails
// if one of them is accepted).
import {
  zeqE2EHandshake, zeqE2EFetch, zeqE2EWrap, zeqE2EUnwrap, zeqE2ESession, zeqE2EWebSocket, ZeqE2EWebSocket,
  ZeqE2EError, ZEQ_E2E_MEDIA_TYPE, ZEQ_E2E_PROTOCOL, ZEQ_E2E_RECORD_SIZE, ZEQ_E2E_ENVELOPE_OVERHEAD,
  ZEQ_E2E_WS_CLOSE_POLICY, ZEQ_E2E_WS_CLOSE_BAD_TEXT,
} from 'zeq-e2e-client';
import type {
  ZeqE2ESessionInfo, ZeqE2EHandshakeOptions, ZeqE2EServerErrorCode, ZeqE2EClientErrorCode, ZeqE2EServerKey,
} from 'zeq-e2e-client';

const mediaType: 'application/x-zeq-e2e' = ZEQ_E2E_MEDIA_TYPE;
const protocol: 2 = ZEQ_E2E_PROTOCOL;
const sizes: number = ZEQ_E2E_RECORD_SIZE + ZEQ_E2E_ENVELOPE_OVERHEAD + ZEQ_E2E_WS_CLOSE_POLICY + ZEQ_E2E_WS_CLOSE_BAD_TEXT;

export async function use(origin: string, serverKey: ZeqE2EServerKey, secret: string): Promise<string> {
  const info: ZeqE2ESessionInfo = await zeqE2EHandshake(origin, { serverKey: [serverKey] });
  const version: 1 | 2 = info.version;
  const signer: string | null = info.signer;
  const options: ZeqE2EHandshakeOptions[] = [
    {}, { secret }, { secret: new Uint8Array(8), serverKey }, { secret, allowV1: true }, { protocol: 1, secret },
    { handshakePath: '/e2e' },
  ];
  // @ts-expect-error protocol 1 needs the secret
  await zeqE2EHandshake(origin, { protocol: 1 });
  // @ts-expect-error version 1 handshakes are never signed
  await zeqE2EHandshake(origin, { protocol: 1, secret, serverKey });
  // @ts-expect-error allowV1 needs the secret
  await zeqE2EHandshake(origin, { allowV1: true });
  // @ts-expect-error there is no protocol 3
  await zeqE2EHandshake(origin, { protocol: 3 });

  const res = await zeqE2EFetch(new URL('/api/items', origin), { method: 'POST', body: JSON.stringify({ a: 1 }) });
  const refused: ZeqE2EServerErrorCode | undefined = res.zeqE2EError;
  const body: string = await res.text();
  zeqE2EWrap();
  zeqE2EUnwrap();
  const session = zeqE2ESession();
  const where: string = session ? session.origin : 'none';

  const ws: ZeqE2EWebSocket = zeqE2EWebSocket('/ws/echo', ['chat']);
  ws.binaryType = 'arraybuffer';
  // @ts-expect-error binaryType is 'blob' or 'arraybuffer'
  ws.binaryType = 'text';
  ws.addEventListener('message', (ev) => {
    const data: string | Blob | ArrayBuffer = ev.data;
    if (typeof data === 'string') ws.send(data.toUpperCase());
  });
  ws.addEventListener('error', (ev) => {
    const error: ZeqE2EError | undefined = ev.error;
    if (error) console.log(error.code, error.status);
  });
  ws.onclose = (ev) => { const code: number = ev.code; console.log(code, ev.wasClean); };
  const state: 0 | 1 | 2 | 3 = ws.readyState;
  new ZeqE2EWebSocket('/ws/echo').close(1000, 'done');

  try {
    await zeqE2EHandshake(origin);
  } catch (e) {
    if (e instanceof ZeqE2EError) {
      const code: ZeqE2EServerErrorCode | ZeqE2EClientErrorCode | string = e.code;
      const status: number = e.status;
      console.log(code, status, e.cause);
    }
  }
  return [mediaType, protocol, sizes, version, signer, options.length, refused, body, where, state].join(' ');
}
