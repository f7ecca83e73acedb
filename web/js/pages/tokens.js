// Access tokens (`.../-/settings/access_tokens`) and deploy tokens
// (`.../-/settings/repository`) of a project or group: list, create (the
// token is shown once), revoke. Listing needs a maintainer (a group's
// owner); the API's 403 becomes the "ask a maintainer" page.

import { h, replace, field, select, empty, time, notice, copyButton, confirmDialog } from '../dom.js';
import { api, encodeId } from '../api.js';
import { loadProject, projectHeader } from './packages.js';
import { loadGroup, groupHeader } from './group.js';
import { errorNotice } from './errors.js';

const KINDS = {
  'access-tokens': {
    title: 'Access tokens', one: 'access token', api: 'access_tokens',
    scopes: ['api', 'read_api', 'read_package_registry', 'write_package_registry'],
  },
  'deploy-tokens': {
    title: 'Deploy tokens', one: 'deploy token', api: 'deploy_tokens',
    scopes: ['read_package_registry', 'write_package_registry'],
  },
};

const ROLES = [['10', 'Guest'], ['20', 'Reporter'], ['30', 'Developer'], ['40', 'Maintainer'], ['50', 'Owner']];

export async function render(main, route, context) {
  const kind = KINDS[route.page];
  let header;
  let base;
  if (route.kind === 'group') {
    const group = await loadGroup(route.path);
    header = groupHeader(group, route.page, context, kind.title);
    base = `/api/v4/groups/${encodeId(group.full_path)}/${kind.api}`;
  } else {
    const project = await loadProject(route.path);
    header = projectHeader(project, route.page, context, kind.title);
    base = `/api/v4/projects/${project.id}/${kind.api}`;
  }
  const { data: tokens } = await api(`${base}?per_page=100`);
  if (context.stale()) return;
  const created = h('div', { 'aria-live': 'polite' });
  replace(main, header, created,
    h('h2', { text: `New ${kind.one}` }),
    createForm(route.page, kind, base, created, context),
    h('h2', { text: `Active ${kind.title.toLowerCase()}` }),
    tokenTable(route.page, base, tokens, context));
}

function createForm(page, kind, base, created, context) {
  const name = h('input', { name: 'name', required: true, autocomplete: 'off' });
  const expires = h('input', { type: 'date', name: 'expires_at' });
  const role = select('access_level', ROLES, '30');
  const username = h('input', { name: 'username', autocomplete: 'off', placeholder: 'gitlab+deploy-token-<id>' });
  const scopes = kind.scopes.map((scope) => h('input', { type: 'checkbox', name: 'scopes', value: scope }));
  const form = h('form', { class: 'stack' },
    field('Token name', name),
    field('Expiration date', expires, page === 'access-tokens' ? 'Empty: a year (or the longest allowed).' : 'Empty: never.'),
    page === 'access-tokens' ? field('Role', role) : field('Username (optional)', username),
    h('fieldset', {}, h('legend', { text: 'Scopes' }),
      scopes.map((box) => h('label', { class: 'inline' }, box, box.value))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: `Create ${kind.one}` })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), scopes: scopes.filter((b) => b.checked).map((b) => b.value) };
    if (expires.value) body.expires_at = expires.value;
    if (page === 'access-tokens') body.access_level = Number(role.value);
    else if (username.value.trim()) body.username = username.value.trim();
    try {
      const { data } = await api(base, { method: 'POST', json: body });
      form.reset();
      showCreated(created, data);
      await context.refresh();
      // The refresh drew a new page: show the token there, once.
      const slot = document.querySelector('main [aria-live]');
      if (slot) showCreated(slot, data);
    } catch (error) {
      replace(created, errorNotice(error));
    }
  });
  return form;
}

/** The new token, shown this once with a copy button. */
function showCreated(slot, data) {
  replace(slot, h('div', { class: 'notice ok', role: 'status' },
    h('strong', { text: `Token “${data.name}” created.` }),
    h('p', { text: 'Copy it now: it is not shown again.' }),
    h('p', {}, h('code', { class: 'secret', 'data-testid': 'new-token', text: data.token }), ' ', copyButton(data.token, 'Copy token')),
    data.username ? h('p', { text: `Username: ${data.username}` }) : null));
}

function tokenTable(page, base, tokens, context) {
  const live = tokens.filter((t) => !t.revoked);
  if (!live.length) return empty('No active tokens.');
  const isAccess = page === 'access-tokens';
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'Name' }), h('th', { scope: 'col', text: 'Scopes' }),
      h('th', { scope: 'col', text: isAccess ? 'Role' : 'Username' }),
      h('th', { scope: 'col', class: 'optional', text: 'Created' }), h('th', { scope: 'col', text: 'Expires' }),
      h('th', { scope: 'col', text: 'Actions' }))),
    h('tbody', {}, live.map((t) => h('tr', {},
      h('td', { class: 'name', text: t.name }),
      h('td', { text: (t.scopes || []).join(', ') }),
      h('td', { text: isAccess ? roleName(t.access_level) : t.username }),
      h('td', { class: 'optional' }, t.created_at ? time(t.created_at) : '—'),
      h('td', {}, t.expires_at ? h('span', { text: t.expires_at }) : 'never', t.expired ? ' (expired)' : ''),
      h('td', {}, h('button', { type: 'button', class: 'danger small', onclick: () => revoke(base, t, context) }, `Revoke ${t.name}`)))))));
}

function roleName(level) {
  const found = ROLES.find(([value]) => Number(value) === level);
  return found ? found[1] : String(level ?? '');
}

async function revoke(base, token, context) {
  const yes = await confirmDialog('Revoke token?', `Revoke “${token.name}”? Anything using it stops working at once.`, 'Revoke');
  if (!yes) return;
  try {
    await api(`${base}/${token.id}`, { method: 'DELETE' });
    await context.refresh();
    const slot = document.querySelector('main [aria-live]');
    if (slot) replace(slot, notice('ok', 'Revoked.', `“${token.name}” no longer works.`));
  } catch (error) {
    const slot = document.querySelector('main [aria-live]');
    if (slot) replace(slot, errorNotice(error));
  }
}
