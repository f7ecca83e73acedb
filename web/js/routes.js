// Which page a path is, following GitLab's URL shapes so the API's
// `web_path`/`web_url` values open the right page. Pure: no DOM, no fetch.

const SETTINGS = {
  packages_and_registries: 'settings',
  access_tokens: 'access-tokens',
  repository: 'deploy-tokens',
};

function segments(pathname) {
  return pathname.split('/').filter(Boolean).map((segment) => {
    try { return decodeURIComponent(segment); } catch { return segment; }
  });
}

/** `{page, ...params}` for a path; `page: 'not-found'` when it is none. */
export function match(pathname) {
  const parts = segments(pathname);
  if (parts.length === 0) return { page: 'projects' };
  if (parts.length === 1 && parts[0] === 'explore') return { page: 'projects' };
  if (parts.join('/') === 'explore/projects') return { page: 'projects' };
  if (parts.join('/') === 'users/sign_in') return { page: 'sign-in' };

  const dash = parts.indexOf('-');
  const owner = (dash === -1 ? parts : parts.slice(0, dash));
  const rest = dash === -1 ? [] : parts.slice(dash + 1);
  if (owner.length === 0) return { page: 'not-found' };

  if (owner[0] === 'groups') {
    const group = owner.slice(1).join('/');
    if (!group) return { page: 'not-found' };
    if (dash === -1 || (rest.length === 1 && rest[0] === 'packages')) return { page: 'group', group };
    if (rest.length === 2 && rest[0] === 'settings' && SETTINGS[rest[1]]) {
      return { page: SETTINGS[rest[1]], kind: 'group', path: group };
    }
    return { page: 'not-found' };
  }

  const path = owner.join('/');
  if (dash === -1) return { page: 'namespace', path };
  if (owner.length < 2) return { page: 'not-found' };
  if (rest.length === 1 && rest[0] === 'packages') return { page: 'packages', project: path };
  if (rest.length === 2 && rest[0] === 'packages' && /^\d+$/.test(rest[1])) {
    return { page: 'package', project: path, id: Number(rest[1]) };
  }
  if (rest.length === 2 && rest[0] === 'settings' && SETTINGS[rest[1]]) {
    return { page: SETTINGS[rest[1]], kind: 'project', path };
  }
  return { page: 'not-found' };
}

/** The paths of a project's pages. */
export const projectPaths = (fullPath) => ({
  packages: `/${fullPath}/-/packages`,
  settings: `/${fullPath}/-/settings/packages_and_registries`,
  accessTokens: `/${fullPath}/-/settings/access_tokens`,
  deployTokens: `/${fullPath}/-/settings/repository`,
});

/** The paths of a group's pages. */
export const groupPaths = (fullPath) => ({
  home: `/groups/${fullPath}`,
  settings: `/groups/${fullPath}/-/settings/packages_and_registries`,
  accessTokens: `/groups/${fullPath}/-/settings/access_tokens`,
  deployTokens: `/groups/${fullPath}/-/settings/repository`,
});
