//! GitLab's API rules, checked natively through [`super::TestRegistry`].

mod permission_matrix;
