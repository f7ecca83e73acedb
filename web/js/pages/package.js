// `/:project/-/packages/:id`: a package's files (with checksums, download
// and copy-paste commands), its other versions, and deletion for those the
// API allows (it sends `delete_api_path` only to them).

import { h, replace, link, time, empty, formatSize, copyButton, confirmDialog, select } from '../dom.js';
import { api, authHeaders, token, genericFileUrl, registryUrl, displayFileName } from '../api.js';
import { projectPaths } from '../routes.js';
import { loadProject, projectHeader } from './packages.js';
import { errorNotice } from './errors.js';

export async function render(main, route, context) {
  const project = await loadProject(route.project);
  const base = `/api/v4/projects/${project.id}/packages/${route.id}`;
  const [{ data: pkg }, { data: files }] = await Promise.all([
    api(base), api(`${base}/package_files?per_page=100&order_by=created_at&sort=desc`),
  ]);
  if (context.stale()) return;
  const mayDelete = Boolean(pkg._links && pkg._links.delete_api_path);
  const status = h('div', { 'aria-live': 'polite' });

  replace(main,
    projectHeader(project, 'packages', context, `${pkg.name} ${pkg.version}`),
    h('p', { class: 'muted' }, h('span', { class: 'badge', text: pkg.status }), ' generic package, created ', time(pkg.created_at),
      ', last downloaded ', time(pkg.last_downloaded_at)),
    status,
    mayDelete ? h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'danger', onclick: () => deletePackage(project, pkg, status, context) }, 'Delete package')) : null,
    h('h2', { text: 'Files' }),
    files.length ? fileTable(project, pkg, files, mayDelete, status, context) : empty('This package has no files.'),
    files.length ? commands(project, pkg, files) : null,
    h('h2', { text: 'Other versions' }),
    otherVersions(project, pkg));
}

function fileTable(project, pkg, files, mayDelete, status, context) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'cards-on-phone' },
    h('caption', { class: 'muted', text: 'Files, newest first' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'File' }), h('th', { scope: 'col', text: 'Size' }),
      h('th', { scope: 'col', text: 'sha256' }), h('th', { scope: 'col', class: 'optional', text: 'Created' }),
      h('th', { scope: 'col', text: 'Actions' }))),
    h('tbody', {}, files.map((file) => h('tr', {},
      h('td', { class: 'name', 'data-label': 'File', text: displayFileName(file.file_name) }),
      h('td', { 'data-label': 'Size', text: formatSize(file.size) }),
      h('td', { 'data-label': 'sha256' }, h('code', { class: 'hash', text: file.file_sha256 }), ' ', copyButton(file.file_sha256, 'Copy sha256')),
      h('td', { 'data-label': 'Created' }, time(file.created_at)),
      h('td', {}, h('div', { class: 'actions' },
        downloadLink(project, pkg, file),
        mayDelete ? h('button', { type: 'button', class: 'danger small', onclick: () => deleteFile(project, pkg, file, status, context) }, 'Delete') : null)))))));
}

/** A download link; for a private project, a click fetches the file with
 *  the token (a plain link cannot send it) and saves it from memory. */
function downloadLink(project, pkg, file) {
  const url = `/api/v4/projects/${project.id}/packages/${pkg.id}/package_files/${file.id}/download`;
  const name = displayFileName(file.file_name).split('/').pop();
  const anchor = h('a', { href: url, download: name, class: 'button small', 'aria-label': `Download ${displayFileName(file.file_name)}` }, 'Download');
  if (project.visibility !== 'public' && token()) {
    anchor.addEventListener('click', async (event) => {
      event.preventDefault();
      const response = await fetch(url, { headers: authHeaders(), credentials: 'omit' });
      if (!response.ok) { anchor.textContent = `Download failed (${response.status})`; return; }
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = h('a', { href: blobUrl, download: name });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
    });
  }
  return anchor;
}

/** Single-quoted for POSIX shells. */
function shellQuote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Single-quoted for PowerShell. */
function powerShellQuote(text) {
  return `'${text.replace(/'/g, "''")}'`;
}

/** Copy-paste commands for one file, with this registry's URL. The token
 *  is never written into them: they read it from $TOKEN. */
export function commandsFor(project, pkg, file) {
  const stored = displayFileName(file.file_name);
  const url = genericFileUrl(project.id, pkg.name, pkg.version, stored);
  const out = stored.split('/').pop();
  return [
    ['curl', `curl --fail --location --header "PRIVATE-TOKEN: $TOKEN" --output ${shellQuote(out)} ${shellQuote(url)}`],
    ['wget', `wget --header="PRIVATE-TOKEN: $TOKEN" --output-document=${shellQuote(out)} ${shellQuote(url)}`],
    ['PowerShell', `Invoke-WebRequest -Headers @{ "PRIVATE-TOKEN" = $env:TOKEN } -OutFile ${powerShellQuote(out)} -Uri ${powerShellQuote(url)}`],
    ['python-gitlab', [
      'import os, gitlab',
      `gl = gitlab.Gitlab(${JSON.stringify(registryUrl())}, private_token=os.environ.get("TOKEN"))`,
      `project = gl.projects.get(${project.id})`,
      `data = project.generic_packages.download(package_name=${JSON.stringify(pkg.name)}, package_version=${JSON.stringify(pkg.version)}, file_name=${JSON.stringify(stored)})`,
      `open(${JSON.stringify(out)}, "wb").write(data)`,
    ].join('\n')],
  ];
}

function commands(project, pkg, files) {
  const unique = [...new Map(files.map((f) => [f.file_name, f])).values()];
  const chooser = select('file', unique.map((f) => [String(f.id), displayFileName(f.file_name)]), String(unique[0].id));
  const list = h('div');
  const draw = () => {
    const file = unique.find((f) => String(f.id) === chooser.value);
    replace(list, commandsFor(project, pkg, file).map(([tool, text]) => h('section', { 'aria-label': `${tool} command` },
      h('h3', { text: tool }),
      h('div', { class: 'command' }, h('pre', {}, h('code', { 'data-tool': tool, text })), copyButton(text, `Copy ${tool} command`)))));
  };
  chooser.addEventListener('change', draw);
  draw();
  return [
    h('h2', { text: 'Download commands' }),
    h('p', { class: 'muted', text: 'Set TOKEN to a token that may read this project (or leave it empty for a public project).' }),
    h('label', {}, 'Commands for file', chooser),
    list,
  ];
}

function otherVersions(project, pkg) {
  const versions = pkg.versions || [];
  if (!versions.length) return empty('No other versions of this package.');
  return h('ul', { class: 'cards', 'aria-label': 'Other versions' }, versions.map((v) => h('li', {},
    link(`${projectPaths(project.path_with_namespace).packages}/${v.id}`, v.version),
    h('span', { class: 'muted' }, 'created ', time(v.created_at)))));
}

async function deletePackage(project, pkg, status, context) {
  const yes = await confirmDialog('Delete package?', `Delete ${pkg.name} ${pkg.version} and all its files? This cannot be undone.`, 'Delete package');
  if (!yes) return;
  try {
    await api(`/api/v4/projects/${project.id}/packages/${pkg.id}`, { method: 'DELETE' });
    context.navigate(projectPaths(project.path_with_namespace).packages);
  } catch (error) {
    replace(status, errorNotice(error));
  }
}

async function deleteFile(project, pkg, file, status, context) {
  const name = displayFileName(file.file_name);
  const yes = await confirmDialog('Delete file?', `Delete ${name} (${formatSize(file.size)}) from ${pkg.name} ${pkg.version}? This cannot be undone.`, 'Delete file');
  if (!yes) return;
  try {
    await api(`/api/v4/projects/${project.id}/packages/${pkg.id}/package_files/${file.id}`, { method: 'DELETE' });
    context.refresh();
  } catch (error) {
    replace(status, errorNotice(error));
  }
}
