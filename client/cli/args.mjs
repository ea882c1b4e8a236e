// The command line of zeq-e2e: its grammar, its usage text, and the checks
// of what each command takes (a usage error is exit status 1).
import { CliError, EXIT } from './exit.mjs';

export const USAGE = `Usage: zeq-e2e COMMAND URL [OPTIONS]

Talks to a web server with mod_zeq_e2e: a handshake, then every request
sealed and every answer verified (docs/PROTOCOL.md; protocol 2 by default).

Commands:
  get URL          a sealed GET; the answer's body to stdout
  post URL         a sealed POST of --data
  ws URL           a WebSocket: each line of stdin is sent as a text message,
                   each message received goes to stdout (text with a newline)
  check URL        what the server offers (versions, signing, pre-shared key
                   mode, session lifetime), a sealed GET of URL, and whether a
                   plaintext GET of URL is refused (ZeqE2ERequire On)

Options:
  --protocol 1|2        the protocol version (default 2; 1 needs --psk-file)
  --psk-file FILE       the virtual host's secret (ZeqE2ESecret): protocol 2's
                        pre-shared key mode, or protocol 1's key (one trailing
                        newline is not part of it)
  --server-key FILE     pin the server's signing key (ZeqE2EServerKey): a PEM
                        public or private key, an SPKI in base64url, or a JWK;
                        repeat it for a rotation (either may sign)
  --handshake-path PATH the handshake's path (default /api/e2e/handshake)
  -H, --header 'Name: value'
                        a request header (repeatable; also on a WebSocket
                        opening)
  -d, --data @FILE|-|TEXT
                        post: the body, from FILE, from stdin (-) or TEXT
  -t, --type TYPE       post: its media type (default text/plain;charset=UTF-8
                        for TEXT, application/octet-stream for a file or stdin)
  -i, --include         get, post: the answer's status and headers first, as
                        the application sent them
  -v, --verbose         the exchange as it goes over the wire, on stderr: the
                        handshake, the sealed requests' headers, seals and
                        record sizes, the answers, WebSocket frames
  --save-wire DIR       write each exchange as sent and received into DIR:
                        N.request-line, N.request-headers (curl -H @FILE),
                        N.request-body, N.response-headers, N.response-body,
                        N.out-K and N.in-K (WebSocket frames)
  --json                check: the report as JSON on stdout
  --count N             ws: close after N messages from the server (stdin's
                        end then does not close)
  --wait SECONDS        ws: after stdin's end, wait this long for messages
                        before closing (default 1)
  --max-time SECONDS    give up after this long (exit status 2)
  -h, --help            this text
  -V, --version         the version

Exit status:
  0  done: the answer verified and its status is below 400 (ws: closed with
     1000, 1001 or 1005; check: a session and a sealed GET that verified)
  1  usage: an unknown command or option, a missing value, a file that
     cannot be read
  2  network: no connection, a lost connection, --max-time passed
  3  protocol: no session (handshake refused, a pinned key that did not sign,
     a downgrade), an answer that is not sealed or does not verify, a request
     the server could not verify (e2e_decrypt_failed, ...), a WebSocket
     closed for a message that did not verify (1008, 4008, 1007, 4007, 1002)
  4  an HTTP error status that verified (404, 500, ...), or a refusal of the
     module that is not a protocol failure (413 e2e_body_too_large, 403
     e2e_required); a WebSocket closed with another code or refused so
`;

const COMMANDS = ['get', 'post', 'ws', 'check'];

/** name -> [key, takes a value, repeatable, commands (null: all)] */
const OPTIONS = new Map([
  ['--protocol', ['protocol', true, false, null]],
  ['--psk-file', ['pskFile', true, false, null]],
  ['--server-key', ['serverKeys', true, true, null]],
  ['--handshake-path', ['handshakePath', true, false, null]],
  ['--header', ['headers', true, true, null]],
  ['--data', ['data', true, false, ['post']]],
  ['--type', ['type', true, false, ['post']]],
  ['--include', ['include', false, false, ['get', 'post']]],
  ['--verbose', ['verbose', false, false, null]],
  ['--save-wire', ['saveWire', true, false, null]],
  ['--json', ['json', false, false, ['check']]],
  ['--count', ['count', true, false, ['ws']]],
  ['--wait', ['wait', true, false, ['ws']]],
  ['--max-time', ['maxTime', true, false, null]],
  ['--help', ['help', false, false, null]],
  ['--version', ['version', false, false, null]],
]);
const SHORT = new Map([
  ['-H', '--header'], ['-d', '--data'], ['-t', '--type'], ['-i', '--include'], ['-v', '--verbose'],
  ['-h', '--help'], ['-V', '--version'],
]);

function usage(message) {
  return new CliError(EXIT.USAGE, `${message} (zeq-e2e --help tells more)`);
}

function seconds(name, text) {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n)) throw usage(`${name} takes a number of seconds, not ${JSON.stringify(text)}`);
  return n;
}

/**
 * Parses argv (without node and the script): { command, url, ...options }.
 * Throws CliError (exit status 1) for what it cannot take.
 */
export function parseArgs(argv) {
  const opts = { headers: [], serverKeys: [] };
  const positional = [];
  const seen = [];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let inline = null;
    if (arg.startsWith('--') && arg.includes('=')) {
      inline = arg.slice(arg.indexOf('=') + 1);
      arg = arg.slice(0, arg.indexOf('='));
    } else if (/^-[A-Za-z]{2,}$/.test(arg)) {
      // -iv: flags together; a short option with a value must come last (-iH 'X: y').
      const letters = arg.slice(1).split('').map((c) => `-${c}`);
      argv = [...argv.slice(0, i), ...letters, ...argv.slice(i + 1)];
      arg = argv[i];
    }
    if (SHORT.has(arg)) arg = SHORT.get(arg);
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const spec = OPTIONS.get(arg);
    if (!spec) throw usage(`unknown option ${argv[i]}`);
    const [key, takesValue, repeatable, commands] = spec;
    let value = true;
    if (takesValue) {
      if (inline !== null) value = inline;
      else if (i + 1 < argv.length) value = argv[++i];
      else throw usage(`${arg} needs a value`);
    } else if (inline !== null) {
      throw usage(`${arg} takes no value`);
    }
    if (repeatable) opts[key].push(value);
    else if (key in opts && takesValue) throw usage(`${arg} is given twice`);
    else opts[key] = value;
    seen.push([arg, commands]);
  }
  if (opts.help || opts.version) return opts;
  const [command, url, ...rest] = positional;
  if (!command) throw usage('no command: get, post, ws or check');
  if (!COMMANDS.includes(command)) throw usage(`unknown command ${JSON.stringify(command)}: get, post, ws or check`);
  if (!url) throw usage(`${command} needs a URL`);
  if (rest.length) throw usage(`unexpected argument ${JSON.stringify(rest[0])}`);
  for (const [name, commands] of seen) {
    if (commands && !commands.includes(command)) throw usage(`${name} is not an option of ${command}`);
  }
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw usage(`${JSON.stringify(url)} is not a URL`);
  }
  const schemes = command === 'ws' ? ['http:', 'https:', 'ws:', 'wss:'] : ['http:', 'https:'];
  if (!schemes.includes(parsed.protocol)) throw usage(`${command} takes ${schemes.join(' or ')} URLs, not ${parsed.protocol}`);
  opts.command = command;
  opts.url = parsed.href;
  if (opts.protocol !== undefined) {
    if (opts.protocol !== '1' && opts.protocol !== '2') throw usage(`--protocol is 1 or 2, not ${JSON.stringify(opts.protocol)}`);
    opts.protocol = Number(opts.protocol);
  }
  if (opts.protocol === 1 && opts.pskFile === undefined) throw usage('--protocol 1 needs --psk-file (its key derives from the secret)');
  if (opts.protocol === 1 && opts.serverKeys.length) throw usage('--server-key is for protocol 2: version 1 handshakes are never signed');
  for (const h of opts.headers) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(h)) throw usage(`-H takes 'Name: value', not ${JSON.stringify(h)}`);
  }
  opts.headers = opts.headers.map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(':') + 1).trim()]);
  if (opts.handshakePath !== undefined && !opts.handshakePath.startsWith('/')) throw usage('--handshake-path is a path: /...');
  if (opts.count !== undefined) {
    if (!/^[1-9]\d*$/.test(opts.count)) throw usage(`--count takes a number of messages, not ${JSON.stringify(opts.count)}`);
    opts.count = Number(opts.count);
  }
  if (opts.type !== undefined && opts.data === undefined) throw usage('--type needs --data');
  opts.wait = opts.wait === undefined ? 1 : seconds('--wait', opts.wait);
  if (opts.maxTime !== undefined) opts.maxTime = seconds('--max-time', opts.maxTime);
  return opts;
}
