// Publishing a file from the browser: the same PUT as curl --upload-file,
// sent with XMLHttpRequest because fetch reports no upload progress. The
// registry streams the body to S3 (multipart beyond one part), so the
// file's size is bounded only by the registry's max_file_size.

import { authHeaders, genericFileUrl, ApiError } from './api.js';

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

/** Starts the upload; `onProgress(sent, total)` as bytes go out. Returns
 *  `{done, abort}`: `done` resolves to the file record. */
export function upload({ projectId, name, version, path, fileName, status, file, onProgress }) {
  const stored = path ? `${path}/${fileName}` : fileName;
  const query = new URLSearchParams({ select: 'package_file' });
  if (status && status !== 'default') query.set('status', status);
  const url = `${genericFileUrl(projectId, name, version, stored)}?${query}`;
  const request = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    request.open('PUT', url);
    for (const [header, value] of Object.entries(authHeaders())) request.setRequestHeader(header, value);
    request.upload.addEventListener('progress', (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size));
    request.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = { message: request.responseText }; }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body));
    });
    request.addEventListener('error', () => reject(new Error('the connection to the registry broke off')));
    request.addEventListener('abort', () => reject(new Error('upload cancelled')));
    request.send(file);
  });
  return { done, abort: () => request.abort() };
}
