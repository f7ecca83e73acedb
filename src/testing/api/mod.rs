//! GitLab's API rules, checked natively through [`super::TestRegistry`].
