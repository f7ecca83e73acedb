// Package settings of a project (`/:project/-/settings/packages_and_registries`)
// or a group (`/groups/:group/-/settings/packages_and_registries`):
// duplicates of the namespace (GraphQL, owners change them), and for a
// project its protection rules and cleanup policy (maintainers). What the
// caller may change is what the API lets it read or list.

import { h, replace, field, select, empty, notice } from '../dom.js';
import { api, apiOrNull, graphql, encodeId } from '../api.js';
import { loadProject, projectHeader } from './packages.js';
import { loadGroup, groupHeader } from './group.js';
import { errorNotice } from './errors.js';

const READ_SETTINGS = `query($path: ID!) { namespace(fullPath: $path) {
  packageSettings { genericDuplicatesAllowed genericDuplicateExceptionRegex } } }`;
const UPDATE_SETTINGS = `mutation($input: UpdateNamespacePackageSettingsInput!) {
  updateNamespacePackageSettings(input: $input) {
    packageSettings { genericDuplicatesAllowed genericDuplicateExceptionRegex } errors } }`;

export async function render(main, route, context) {
  if (route.kind === 'group') {
    const group = await loadGroup(route.path);
    const duplicates = await duplicatesSection(group.full_path, context);
    if (context.stale()) return;
    return replace(main, groupHeader(group, 'settings', context, 'Package settings'), duplicates);
  }
  const project = await loadProject(route.path);
  const base = `/api/v4/projects/${project.id}/packages`;
  // Listing protection rules needs a maintainer: the answer says whether
  // the caller may change the project's settings.
  const [duplicates, rules, { data: policy }] = await Promise.all([
    duplicatesSection(project.namespace.full_path, context),
    apiOrNull(`${base}/protection/rules?per_page=100`, [403]),
    api(`${base}/cleanup_policy`),
  ]);
  if (context.stale()) return;
  const maintainer = rules !== null;
  replace(main,
    projectHeader(project, 'settings', context, 'Package settings'),
    maintainer ? null : notice('', 'Read only.', 'Only maintainers change a project\'s package settings; ask one if something needs to change.'),
    duplicates,
    h('h2', { text: 'Protected packages' }),
    maintainer ? protectionRules(base, rules.data, context)
      : h('p', { class: 'muted', text: 'Only maintainers see the protection rules.' }),
    cleanupSection(base, policy, maintainer));
}

async function duplicatesSection(namespace, context) {
  const [settings, owner] = await Promise.all([
    graphql(READ_SETTINGS, { path: namespace }),
    apiOrNull(`/api/v4/groups/${encodeId(namespace)}/access_tokens?per_page=1`, [401, 403, 404]),
  ]);
  const current = settings.namespace && settings.namespace.packageSettings;
  const heading = h('h2', { text: `Duplicate packages in ${namespace}` });
  if (!current) return [heading, empty('These settings are not visible to you.')];
  const allowed = h('input', { type: 'checkbox', name: 'generic_duplicates_allowed', checked: current.genericDuplicatesAllowed, disabled: !owner });
  const regex = h('input', { type: 'text', name: 'generic_duplicate_exception_regex', value: current.genericDuplicateExceptionRegex || '', maxlength: '255', disabled: !owner });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'stack' },
    h('label', { class: 'inline' }, allowed, 'Allow duplicate generic packages (the same file name again in a package)'),
    field('Exceptions', regex, 'A regular expression (RE2) matched against the package name and the version; a match reverses the rule.'),
    owner ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Save duplicate settings' }))
      : h('p', { class: 'muted', text: `Only owners of ${namespace} change these settings.` }),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await graphql(UPDATE_SETTINGS, { input: {
        namespacePath: namespace, genericDuplicatesAllowed: allowed.checked, genericDuplicateExceptionRegex: regex.value,
      } });
      const outcome = answer.updateNamespacePackageSettings;
      if (outcome.errors && outcome.errors.length) replace(status, notice('error', 'Not saved.', outcome.errors.join(' ')));
      else replace(status, notice('ok', 'Saved.', ''));
    } catch (error) {
      replace(status, errorNotice(error));
    }
  });
  return [heading, form];
}

const PUSH_LEVELS = [['', 'Not protected'], ['maintainer', 'Maintainer'], ['owner', 'Owner'], ['admin', 'Administrator']];
const DELETE_LEVELS = [['', 'Not protected'], ['owner', 'Owner'], ['admin', 'Administrator']];

function protectionRules(base, rules, context) {
  const pattern = h('input', { name: 'package_name_pattern', required: true, placeholder: 'my-package-*' });
  const push = select('minimum_access_level_for_push', PUSH_LEVELS, 'maintainer');
  const del = select('minimum_access_level_for_delete', DELETE_LEVELS, '');
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'filters' },
    field('Package name pattern', pattern), field('Minimum role to push', push), field('Minimum role to delete', del),
    h('button', { type: 'submit', class: 'primary', text: 'Add rule' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api(`${base}/protection/rules`, { method: 'POST', json: {
        package_name_pattern: pattern.value.trim(), package_type: 'generic',
        minimum_access_level_for_push: push.value || null, minimum_access_level_for_delete: del.value || null,
      } });
      context.refresh();
    } catch (error) {
      replace(status, errorNotice(error));
    }
  });
  const table = rules.length ? h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Pattern' }), h('th', { scope: 'col', text: 'Push' }),
      h('th', { scope: 'col', text: 'Delete' }), h('th', { scope: 'col', text: 'Actions' }))),
    h('tbody', {}, rules.map((rule) => h('tr', {},
      h('td', { class: 'name', text: rule.package_name_pattern }),
      h('td', { text: rule.minimum_access_level_for_push || '—' }),
      h('td', { text: rule.minimum_access_level_for_delete || '—' }),
      h('td', {}, h('button', { type: 'button', class: 'danger small', onclick: async () => {
        try {
          await api(`${base}/protection/rules/${rule.id}`, { method: 'DELETE' });
          context.refresh();
        } catch (error) { replace(status, errorNotice(error)); }
      } }, `Delete rule ${rule.package_name_pattern}`))))))) : empty('No protection rules.');
  return [table, h('h3', { text: 'Add a rule' }), form, status];
}

const KEEP = [['all', 'All'], ['1', '1'], ['10', '10'], ['20', '20'], ['30', '30'], ['40', '40'], ['50', '50']];

function cleanupSection(base, policy, maintainer) {
  const keep = select('keep_n_duplicated_package_files', KEEP, policy.keep_n_duplicated_package_files);
  keep.disabled = !maintainer;
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'stack' },
    field('Files of the same name kept per package', keep, 'Older files beyond this number are removed when a file is published.'),
    maintainer ? h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Save cleanup policy' })) : null,
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api(`${base}/cleanup_policy`, { method: 'PUT', json: { keep_n_duplicated_package_files: keep.value } });
      replace(status, notice('ok', 'Saved.', ''));
    } catch (error) {
      replace(status, errorNotice(error));
    }
  });
  return [h('h2', { text: 'Cleanup policy' }), form];
}
