// Publishing a file from the browser, with XMLHttpRequest wherever bytes
// go out (fetch reports no upload progress).
//
// Up to SESSION_THRESHOLD: the same PUT as curl --upload-file; the registry
// streams it to S3. Larger files go through an upload session (README,
// "Upload sessions"), so no request to the registry carries more than a
// little JSON and hosts that cap bodies (10 MiB on hosted Spin platforms)
// take files of any size: the page hashes the file, asks for a session,
// PUTs the parts straight to S3's presigned URLs (a few at once), then
// completes the session while the registry verifies the whole file. A
// failed upload leaves its session open: uploading the same file again
// resumes it. Servers without sessions (GitLab) get the single PUT.

import { api, authHeaders, genericFileUrl, ApiError } from './api.js';
import { Sha256, hex, sha256Hex } from './sha256.js';

const MIB = 1024 * 1024;

/** Files larger than this go through an upload session. */
export const SESSION_THRESHOLD = 8 * MIB;
/** Part size asked for (grown for files over 10000 parts, S3's most). */
const PART_SIZE = 8 * MIB;
const MAX_PARTS = 10000;
/** Parts sent at once. */
const PARALLEL_PARTS = 3;
/** Tries per part (a fresh URL each time) before the upload fails. */
const PART_ATTEMPTS = 3;
/** How much of the file is read at once to hash it. */
const HASH_CHUNK = 4 * MIB;
/** Headers a part URL signs that the browser sets itself (a page may not). */
const SET_BY_BROWSER = new Set(['content-length', 'host']);

/** What the progress line says in each phase of an upload. */
export const PHASE_LABELS = {
  hashing: 'Computing the sha256',
  uploading: 'Uploading',
  verifying: 'Verifying on the server',
};

const NAME = /^[A-Za-z0-9._+-]+$/;
const VERSION = /^[A-Za-z0-9_.+-]+$/;
const FILE_NAME = /^[A-Za-z0-9._+~@-]+$/;

/** What is wrong with these fields, as the API would say it, or null. */
export function problems({ name, version, path, fileName }) {
  const found = [];
  if (!NAME.test(name)) found.push('Package name may hold only letters, digits, ".", "_", "+" and "-".');
  if (!VERSION.test(version) || version.includes('..')) found.push('Version may hold only letters, digits, ".", "_", "+" and "-", and no "..".');
  if (!FILE_NAME.test(fileName) || /^[~@]|[~@]$/.test(fileName)) {
    found.push('File name may hold only letters, digits and ". _ + ~ @ -", and may not start or end with ~ or @.');
  }
  if (path && path.split('/').some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) {
    found.push('Path segments may not be empty, "." or "..", nor hold a backslash.');
  }
  return found.length ? found : null;
}

/** Starts the upload; `onProgress(done, total, phase)` as it goes (phase:
 *  a key of PHASE_LABELS). Returns `{done, abort}`: `done` resolves to the
 *  file record. */
export function upload(options) {
  const transfer = new Transfer();
  const done = options.file.size > SESSION_THRESHOLD
    ? uploadInSession(options, transfer)
    : putWhole(options, transfer);
  return { done, abort: () => transfer.cancel() };
}

/** The URL of the file in the generic package API, with `query`. */
function fileUrl({ projectId, name, version, path, fileName, status }, query = {}) {
  const stored = path ? `${path}/${fileName}` : fileName;
  const params = new URLSearchParams(query);
  if (status && status !== 'default') params.set('status', status);
  const search = params.toString();
  return genericFileUrl(projectId, name, version, stored) + (search ? `?${search}` : '');
}

/** The whole file in one PUT. */
async function putWhole(options, transfer) {
  const { file, onProgress } = options;
  const url = fileUrl(options, { select: 'package_file' });
  const answer = await transfer.send('PUT', url, authHeaders(), file, (sent) => onProgress(sent, file.size, 'uploading'))
    .catch((error) => {
      throw error instanceof Unreachable ? new Error('the connection to the registry broke off') : error;
    });
  const body = parseJson(answer.text);
  if (answer.status >= 200 && answer.status < 300) return body;
  throw new ApiError(answer.status, body);
}

async function uploadInSession(options, transfer) {
  const { file, onProgress } = options;
  const sha256 = await hashFile(file, transfer, (hashed) => onProgress(hashed, file.size, 'hashing'));
  const session = await createSession(options, sha256);
  if (!session) return putWhole(options, transfer);
  transfer.onCancel(() => api(session._links.self, { method: 'DELETE' }).catch(() => {}));
  transfer.check();
  await sendParts(session, file, transfer, (sent) => onProgress(sent, file.size, 'uploading'));
  return completeSession(session, transfer, (verified) => onProgress(verified, file.size, 'verifying'));
}

/** The file's sha256 (hex), read HASH_CHUNK at a time. */
async function hashFile(file, transfer, onHashed) {
  const hasher = new Sha256();
  for (let offset = 0; offset < file.size; offset += HASH_CHUNK) {
    transfer.check();
    const end = Math.min(offset + HASH_CHUNK, file.size);
    hasher.update(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
    onHashed(end);
  }
  return hex(hasher.digest());
}

/** Creates (or resumes) the session; null when the server has none. */
async function createSession(options, sha256) {
  const size = options.file.size;
  const partSize = Math.max(PART_SIZE, Math.ceil(size / MAX_PARTS / MIB) * MIB);
  try {
    const { data } = await api(fileUrl(options), { method: 'POST', json: { size, sha256, part_size: partSize } });
    return data;
  } catch (error) {
    // No POST on a file URL: GitLab, or a registry without sessions.
    if (error instanceof ApiError && [404, 405].includes(error.status)) return null;
    throw error;
  }
}

/** The bytes part `number` covers: every part but the last is full. */
function partBounds(session, number) {
  const start = (number - 1) * session.part_size;
  return { start, end: Math.min(start + session.part_size, session.size) };
}

/** Sends the parts S3 does not hold yet, PARALLEL_PARTS at once;
 *  `onSent(bytes)` counts the parts held and the bytes of those on their way. */
async function sendParts(session, file, transfer, onSent) {
  const held = new Set((session.parts || []).map((part) => part.part_number));
  let settled = 0;
  const missing = [];
  for (let number = 1; number <= session.parts_count; number++) {
    const { start, end } = partBounds(session, number);
    if (held.has(number)) settled += end - start;
    else missing.push(number);
  }
  const sending = new Map();
  const report = () => onSent(settled + [...sending.values()].reduce((sum, sent) => sum + sent, 0));
  report();
  let failed = false;
  const worker = async () => {
    while (missing.length && !failed) {
      const number = missing.shift();
      const { start, end } = partBounds(session, number);
      try {
        const bytes = new Uint8Array(await file.slice(start, end).arrayBuffer());
        await sendPart(session, number, bytes, transfer, (sent) => { sending.set(number, sent); report(); });
      } catch (error) {
        failed = true;
        throw error;
      }
      sending.delete(number);
      settled += end - start;
      report();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, missing.length) }, worker));
}

/** PUTs one part to a presigned URL, with a fresh URL for each try. */
async function sendPart(session, number, bytes, transfer, onSent) {
  const sha256 = await sha256Hex(bytes);
  for (let attempt = 1; ; attempt++) {
    transfer.check();
    const { data: link } = await api(`${session._links.self}/parts/${number}`, {
      method: 'POST', json: { sha256, size: bytes.length },
    });
    const headers = Object.fromEntries(Object.entries(link.headers)
      .filter(([name]) => !SET_BY_BROWSER.has(name.toLowerCase())));
    let answer;
    try {
      answer = await transfer.send(link.method || 'PUT', link.url, headers, bytes, onSent);
    } catch (error) {
      if (!(error instanceof Unreachable) || attempt >= PART_ATTEMPTS) throw unreachableStorage(error, link.url);
      continue;
    }
    if (answer.status >= 200 && answer.status < 300) return;
    if (attempt >= PART_ATTEMPTS) {
      throw new Error(`Object storage refused part ${number} (${answer.status}): ${s3Message(answer.text)}`);
    }
  }
}

/** Completes the session, repeating while the registry verifies the file
 *  (202); resolves to the file record. */
async function completeSession(session, transfer, onVerified) {
  for (;;) {
    transfer.check();
    const { status, data } = await api(`${session._links.self}/complete`, { method: 'POST' });
    if (status !== 202) return data;
    onVerified(data.verified_bytes || 0);
  }
}

/** The error to show when the browser could not talk to S3 at all. */
function unreachableStorage(error, url) {
  if (!(error instanceof Unreachable)) return error;
  const storage = new URL(url).origin;
  return new Error(`Your browser could not send the file to object storage at ${storage}. ` +
    `The bucket must allow PUT requests from ${window.location.origin} (CORS, see the README's ` +
    '"Web interface"), and this browser must be able to reach it; genreg push sends files without a browser.');
}

/** The message of an S3 XML error, or the answer's start. */
function s3Message(text) {
  const found = /<Message>([^<]*)<\/Message>/.exec(text || '');
  return found ? found[1] : (text || '').slice(0, 200);
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return { message: text }; }
}

/** A request that got no answer (network failure or a CORS refusal). */
class Unreachable extends Error {}

/** The requests of one upload, so cancelling stops them all. */
class Transfer {
  constructor() {
    this.cancelled = false;
    this.requests = new Set();
    this.cancelHooks = [];
  }

  cancel() {
    if (this.cancelled) return;
    this.cancelled = true;
    for (const request of this.requests) request.abort();
    for (const hook of this.cancelHooks) hook();
  }

  onCancel(hook) {
    this.cancelHooks.push(hook);
  }

  /** Throws once the upload is cancelled. */
  check() {
    if (this.cancelled) throw new Error('upload cancelled');
  }

  /** Sends a body with progress; resolves to `{status, text}` whatever
   *  the status, rejects when no answer came. */
  send(method, url, headers, body, onSent) {
    this.check();
    const request = new XMLHttpRequest();
    this.requests.add(request);
    return new Promise((resolve, reject) => {
      request.open(method, url);
      for (const [header, value] of Object.entries(headers)) request.setRequestHeader(header, value);
      request.upload.addEventListener('progress', (event) => onSent(event.loaded));
      request.addEventListener('load', () => resolve({ status: request.status, text: request.responseText }));
      request.addEventListener('error', () => reject(new Unreachable('the connection broke off')));
      request.addEventListener('abort', () => reject(new Error('upload cancelled')));
      request.send(body);
    }).finally(() => this.requests.delete(request));
  }
}
