//! GitLab's API rules, checked natively through [`super::TestRegistry`]:
//! what the integration suite (`tests/registry`) would check over HTTP but
//! needs neither the component, a host, HTTP nor S3 for.

mod bad_input;
mod cleanup;
mod listing;
mod permission_matrix;
mod protection;
mod referenced_objects;
mod round_trips;
mod settings;
mod token_matrix;
mod upload_sessions;
