//! The component imports only what Spin 3.x and 4.x provide.

#[test]
fn the_component_imports_only_what_spin_provides() {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_file(&engine, genreg::component_path())
        .expect("the component loads");
    let allowed = [
        "wasi:http/types@0.2.",
        "wasi:http/outgoing-handler@0.2.",
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:keyvalue/batch@0.2.0-draft2",
        "fermyon:spin/variables@2.0.0",
        "wasi:io/",
        "wasi:clocks/",
        "wasi:random/",
        "wasi:cli/",
        "wasi:filesystem/",
    ];
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for import in &imports {
        assert!(
            allowed.iter().any(|a| import.starts_with(a)),
            "unexpected import {import}"
        );
    }
    assert!(imports
        .iter()
        .any(|i| i.starts_with("wasi:keyvalue/atomics")));
    let exports: Vec<String> = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
}
