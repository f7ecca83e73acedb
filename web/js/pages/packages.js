// `/:project/-/packages` (and `/:project`): the project's packages with
// search, filters, sort and pages, and the upload dialog.

import { h, replace, link, time, empty, field, select, pager, withQuery, formatSize, notice, copyButton } from '../dom.js';
import { api, encodeId, pageInfo, ApiError } from '../api.js';
import { projectPaths, groupPaths } from '../routes.js';
import { problems, upload, PHASE_LABELS } from '../upload.js';
import { errorNotice } from './errors.js';

/** Breadcrumbs, title and tabs shared by a project's pages. */
export function projectHeader(project, current, context, title) {
  const paths = projectPaths(project.path_with_namespace);
  const namespace = project.namespace.full_path;
  const tab = (key, href, text) => link(href, text, { 'aria-current': key === current ? 'page' : null });
  return [
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' },
      link(groupPaths(namespace).home, namespace), ' / ', link(paths.packages, project.path)),
    h('h1', { text: title }),
    h('nav', { class: 'tabs', 'aria-label': 'Project' },
      tab('packages', paths.packages, 'Packages'),
      context.user ? [
        tab('settings', paths.settings, 'Package settings'),
        tab('access-tokens', paths.accessTokens, 'Access tokens'),
        tab('deploy-tokens', paths.deployTokens, 'Deploy tokens'),
      ] : null),
  ];
}

export async function loadProject(fullPath) {
  return (await api(`/api/v4/projects/${encodeId(fullPath)}`)).data;
}

const FILTERS = ['package_name', 'package_version', 'status', 'order_by', 'sort', 'page'];

export async function render(main, route, context) {
  const project = await loadProject(route.project);
  const filters = Object.fromEntries(FILTERS.map((name) => [name, context.query.get(name) || '']));
  const query = new URLSearchParams({ per_page: '20' });
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  const [{ data, headers }, mayUpload] = await Promise.all([
    api(`/api/v4/projects/${project.id}/packages?${query}`),
    canUpload(project, context),
  ]);
  if (context.stale()) return;

  const filtered = filters.package_name || filters.package_version || filters.status;
  replace(main,
    projectHeader(project, 'packages', context, `${project.name} packages`),
    h('p', { class: 'muted' }, h('span', { class: 'badge', text: project.visibility }), ` project ${project.path_with_namespace}`),
    mayUpload ? h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', onclick: () => openUpload(project, context) }, 'Upload a file')) : null,
    filterForm(filters, context),
    data.length ? packageTable(data) : empty(filtered
      ? 'No package matches these filters.'
      : 'No packages yet. Publish one with the commands in the README, or upload a file here.'),
    pager(pageInfo(headers), (n) => withQuery({ ...filters, page: n })));
}

/** Whether to offer uploads: signed in, and the API does not refuse the
 *  caller's upload sessions (it answers them like a publish). A refusal
 *  on the upload itself is shown in the dialog. */
async function canUpload(project, context) {
  if (!context.user) return false;
  try {
    await api(`/api/v4/projects/${project.id}/packages/upload_sessions`);
    return true;
  } catch (error) {
    return !(error instanceof ApiError && [401, 403].includes(error.status));
  }
}

function filterForm(filters, context) {
  const name = h('input', { type: 'search', name: 'package_name', value: filters.package_name });
  const version = h('input', { type: 'text', name: 'package_version', value: filters.package_version, size: 10 });
  const status = select('status', [['', 'Default'], ['hidden', 'Hidden']], filters.status);
  const orderBy = select('order_by', [['created_at', 'Created'], ['name', 'Name'], ['version', 'Version']], filters.order_by || 'created_at');
  const sort = select('sort', [['asc', 'Ascending'], ['desc', 'Descending']], filters.sort || 'asc');
  const form = h('form', { class: 'filters', role: 'search' },
    field('Search by name', name), field('Version', version), field('Status', status),
    field('Sort by', orderBy), field('Order', sort),
    h('button', { type: 'submit', text: 'Apply' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    context.navigate(withQuery({
      package_name: name.value.trim(), package_version: version.value.trim(),
      status: status.value, order_by: orderBy.value === 'created_at' ? '' : orderBy.value,
      sort: sort.value === 'asc' ? '' : sort.value,
    }));
  });
  return form;
}

function packageTable(packages) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'muted', text: 'Packages' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'Name' }), h('th', { scope: 'col', text: 'Version' }),
      h('th', { scope: 'col', text: 'Status' }), h('th', { scope: 'col', class: 'optional', text: 'Created' }),
      h('th', { scope: 'col', class: 'optional', text: 'Last downloaded' }))),
    h('tbody', {}, packages.map((p) => h('tr', {},
      h('td', { class: 'name' }, link(p._links.web_path, p.name)),
      h('td', { class: 'name', text: p.version }),
      h('td', { text: p.status }),
      h('td', { class: 'optional' }, time(p.created_at)),
      h('td', { class: 'optional' }, time(p.last_downloaded_at)))))));
}

/** The upload dialog: a file (picker or drop), package, version, optional
 *  path, then a progress bar and the stored file's sha256. */
function openUpload(project, context) {
  let chosen = null;
  const fileInput = h('input', { type: 'file', name: 'file' });
  const drop = h('div', { class: 'dropzone', 'data-testid': 'dropzone' },
    h('p', { text: 'Drop a file here, or choose one:' }), fileInput);
  const name = h('input', { name: 'package_name', required: true, autocomplete: 'off' });
  const version = h('input', { name: 'package_version', required: true, autocomplete: 'off' });
  const path = h('input', { name: 'path', autocomplete: 'off', placeholder: 'linux/amd64' });
  const fileName = h('input', { name: 'file_name', required: true, autocomplete: 'off' });
  const status = select('status', [['default', 'Default'], ['hidden', 'Hidden']], 'default');
  const progress = h('progress', { max: '100', value: '0', hidden: true, 'aria-label': 'Upload progress' });
  const progressText = h('p', { 'aria-live': 'polite', class: 'muted' });
  const result = h('div');
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Upload' });
  const cancel = h('button', { type: 'button', text: 'Close' });

  const choose = (file) => {
    chosen = file;
    fileName.value = file ? file.name.replace(/[^A-Za-z0-9._+~@-]/g, '_') : '';
    progressText.textContent = file ? `${file.name}, ${formatSize(file.size)}` : '';
  };
  fileInput.addEventListener('change', () => choose(fileInput.files[0] || null));
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });

  const form = h('form', { class: 'stack' },
    drop, field('Package name', name), field('Version', version),
    field('Path (optional)', path, 'Folders before the file name, separated by /'),
    field('File name', fileName), field('Status', status),
    progress, progressText, result, h('div', { class: 'actions' }, submit, cancel));
  const dialog = h('dialog', { 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title', text: `Upload to ${project.path_with_namespace}` }), form);

  let current = null;
  cancel.addEventListener('click', () => { if (current) current.abort(); dialog.close(); });
  dialog.addEventListener('close', () => { dialog.remove(); if (current) current.abort(); });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fields = { name: name.value.trim(), version: version.value.trim(), path: path.value.trim().replace(/^\/+|\/+$/g, ''), fileName: fileName.value.trim() };
    replace(result);
    if (!chosen) return replace(result, notice('error', 'No file chosen.', 'Drop a file or use the picker.'));
    const found = problems(fields);
    if (found) return replace(result, notice('error', 'Check the fields.', found.join(' ')));
    submit.disabled = true;
    progress.hidden = false;
    current = upload({
      projectId: project.id, ...fields, status: status.value, file: chosen,
      onProgress: (sent, total, phase) => {
        const percent = total ? Math.floor((sent / total) * 100) : 0;
        progress.value = percent;
        progressText.textContent = `${PHASE_LABELS[phase]}: ${formatSize(sent)} of ${formatSize(total)} (${percent}%)`;
      },
    });
    try {
      const record = await current.done;
      progress.value = 100;
      progressText.textContent = `Uploaded ${formatSize(record.size)}.`;
      const open = link(`/${project.path_with_namespace}/-/packages/${record.package_id}`, 'Open the package');
      // The link moves to another page: the dialog goes, with no refresh of this one.
      open.addEventListener('click', () => { context.uploaded = false; dialog.close(); });
      replace(result, h('div', { class: 'notice ok', role: 'status' },
        h('strong', { text: 'Uploaded.' }), ' sha256: ',
        h('code', { class: 'hash', 'data-testid': 'uploaded-sha256', text: record.file_sha256 }), ' ',
        copyButton(record.file_sha256, 'Copy sha256'), ' ', open));
      result.scrollIntoView({ block: 'nearest' });
      cancel.textContent = 'Close';
      context.uploaded = true;
    } catch (error) {
      progress.hidden = true;
      replace(result, errorNotice(error));
    } finally {
      current = null;
      submit.disabled = false;
    }
  });
  dialog.addEventListener('close', () => { if (context.uploaded) context.refresh(); }, { once: true });
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
}
