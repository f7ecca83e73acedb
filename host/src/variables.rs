//! `fermyon:spin/variables@2.0.0`: the component's configuration, resolved
//! the way Spin resolves application variables (same name rules, same
//! errors), from a fixed map built at start.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin-variables@2.0.0",
        inline: "
            package genreg:host-variables;
            world variables {
                import fermyon:spin/variables@2.0.0;
            }
        ",
    });
}

use bindings::fermyon::spin::variables::{self, Error};

/// Configuration shared by every instance: the variables and their values.
#[derive(Clone, Default)]
pub struct VariablesCtx {
    values: Arc<BTreeMap<String, String>>,
}

impl VariablesCtx {
    pub fn new(values: BTreeMap<String, String>) -> Self {
        VariablesCtx {
            values: Arc::new(values),
        }
    }

    /// Resolves `name` as Spin does: an invalid name is `invalid-name`, a
    /// valid one without a value is `undefined`.
    pub fn get(&self, name: &str) -> Result<String, Error> {
        check_name(name).map_err(|reason| Error::InvalidName(format!("{name:?}: {reason}")))?;
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Undefined(format!("no variable for {name:?}")))
    }
}

/// Spin's variable name rules: lower-case ASCII letters, digits and single
/// underscores, starting with a letter and not ending with an underscore.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return Err("must not be empty");
    };
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return Err("may contain only lower-case letters, numbers, and underscores");
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter");
    }
    if !last.is_ascii_alphanumeric() {
        return Err("must end with a lowercase ASCII letter or digit");
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores");
    }
    Ok(())
}

/// What the bindings see.
pub struct Variables<'a> {
    pub ctx: &'a VariablesCtx,
}

/// Adds `fermyon:spin/variables@2.0.0` to `linker`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> Variables<'_>,
) -> wasmtime::Result<()> {
    variables::add_to_linker::<_, HasVariables>(linker, view)
}

struct HasVariables;

impl HasData for HasVariables {
    type Data<'a> = Variables<'a>;
}

impl variables::Host for Variables<'_> {
    fn get(&mut self, name: String) -> Result<String, Error> {
        self.ctx.get(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> VariablesCtx {
        VariablesCtx::new(BTreeMap::from([("s3_bucket".to_string(), "b".to_string())]))
    }

    #[test]
    fn defined_variable_resolves() {
        assert_eq!(ctx().get("s3_bucket").unwrap(), "b");
    }

    #[test]
    fn valid_but_unknown_name_is_undefined() {
        assert!(matches!(ctx().get("nope"), Err(Error::Undefined(_))));
    }

    #[test]
    fn names_follow_spins_rules() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(check_name(bad).is_err(), "{bad}");
            assert!(
                matches!(ctx().get(bad), Err(Error::InvalidName(_))),
                "{bad}"
            );
        }
    }
}
