// `/groups/:group` (and `/:group`): a group's projects and packages.

import { h, replace, link, time, empty, pager, withQuery } from '../dom.js';
import { api, encodeId, pageInfo } from '../api.js';
import { groupPaths } from '../routes.js';
import { projectList } from './projects.js';

/** Breadcrumbs, title and tabs shared by a group's pages. */
export function groupHeader(group, current, context, title) {
  const paths = groupPaths(group.full_path);
  const tab = (key, href, text) => link(href, text, { 'aria-current': key === current ? 'page' : null });
  const parts = group.full_path.split('/');
  return [
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' },
      parts.map((part, i) => [i ? ' / ' : '', link(groupPaths(parts.slice(0, i + 1).join('/')).home, part)])),
    h('h1', { text: title }),
    h('nav', { class: 'tabs', 'aria-label': 'Group' },
      tab('overview', paths.home, 'Overview'),
      context.user ? [
        tab('settings', paths.settings, 'Package settings'),
        tab('access-tokens', paths.accessTokens, 'Access tokens'),
        tab('deploy-tokens', paths.deployTokens, 'Deploy tokens'),
      ] : null),
  ];
}

export async function loadGroup(fullPath) {
  return (await api(`/api/v4/groups/${encodeId(fullPath)}`)).data;
}

export async function render(main, route, context) {
  const group = await loadGroup(route.group);
  const id = encodeId(group.full_path);
  const page = context.query.get('page') || '1';
  const [{ data: projects }, { data: packages, headers }] = await Promise.all([
    api(`/api/v4/groups/${id}/projects?include_subgroups=true&per_page=100`),
    api(`/api/v4/groups/${id}/packages?per_page=20&page=${encodeURIComponent(page)}&order_by=created_at&sort=desc`),
  ]);
  if (context.stale()) return;
  replace(main,
    groupHeader(group, 'overview', context, group.full_name || group.full_path),
    h('h2', { text: 'Projects' }),
    projects.length ? projectList(projects) : empty('No projects in this group that you may see.'),
    h('h2', { text: 'Packages' }),
    packages.length ? groupPackages(packages) : empty('No packages in this group yet.'),
    pager(pageInfo(headers), (n) => withQuery({ page: n })));
}

function groupPackages(packages) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', { class: 'muted', text: 'Packages, newest first' }),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', text: 'Name' }), h('th', { scope: 'col', text: 'Version' }),
      h('th', { scope: 'col', text: 'Project' }), h('th', { scope: 'col', class: 'optional', text: 'Created' }))),
    h('tbody', {}, packages.map((p) => h('tr', {},
      h('td', { class: 'name' }, link(p._links.web_path, p.name)),
      h('td', { class: 'name', text: p.version }),
      h('td', { class: 'name' }, link(`/${p.project_path}/-/packages`, p.project_path)),
      h('td', { class: 'optional' }, time(p.created_at)))))));
}
