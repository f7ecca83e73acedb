// `/` and `/explore`: the projects the visitor may see, with search.

import { h, replace, link, time, empty, field, pager, withQuery } from '../dom.js';
import { api, pageInfo } from '../api.js';
import { projectPaths } from '../routes.js';

export async function render(main, _route, context) {
  const search = context.query.get('search') || '';
  const page = context.query.get('page') || '1';
  const query = new URLSearchParams({ per_page: '20', page });
  if (search) query.set('search', search);
  const { data, headers } = await api(`/api/v4/projects?${query}`);
  if (context.stale()) return;

  const input = h('input', { type: 'search', name: 'search', value: search });
  const form = h('form', { class: 'filters', role: 'search' },
    field('Search projects', input),
    h('button', { type: 'submit', text: 'Search' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    context.navigate(withQuery({ search: input.value.trim() }));
  });

  replace(main,
    h('h1', { text: 'Projects' }),
    form,
    data.length ? projectList(data) : noProjects(search, context),
    pager(pageInfo(headers), (n) => withQuery({ search, page: n })));
}

export function projectList(projects) {
  return h('ul', { class: 'cards', 'aria-label': 'Projects' },
    projects.map((project) => h('li', {},
      h('span', {},
        link(projectPaths(project.path_with_namespace).packages, project.path_with_namespace),
        ' ', h('span', { class: 'badge', text: project.visibility })),
      h('span', { class: 'muted' }, 'created ', time(project.created_at)))));
}

function noProjects(search, context) {
  if (search) return empty(`No project matches “${search}”.`);
  return empty(h('p', { text: 'No projects to show.' }),
    context.user
      ? h('p', { text: 'Your token reaches no project yet. Administrators create projects through the API.' })
      : h('p', {}, 'Private projects appear once you ', link('/users/sign_in', 'sign in'), '.'));
}
