//! Fails `cargo test` when the checked-in generated protobuf code does not
//! match the `.proto` files (the same check as `cargo xtask check-proto`).

#[test]
fn generated_proto_code_is_up_to_date() {
    let drift = xtask::check_proto(&xtask::workspace_root()).expect("protobuf generation failed");
    assert!(drift.is_empty(), "{drift}");
}

#[test]
fn formatting_is_stable() {
    let code = "pub struct A { pub x: u32 }\nimpl A { fn f(&self) -> u32 { self.x } }\n";
    let once = xtask::format_code(code).unwrap();
    // Reformatting the output (minus the header comment) gives the same text.
    let body = once.split_once("\n\n").unwrap().1;
    assert_eq!(xtask::format_code(body).unwrap(), once);
}

#[test]
fn unset_message_fields_serialize_as_null() {
    let code = "        if let Some(v) = self.spiffe_id.as_ref() {\n            struct_ser.serialize_field(\"spiffe_id\", v)?;\n        }\n        if let Some(v) = self.step.as_ref() {\n            match v {}\n        }\n";
    assert_eq!(
        xtask::emit_null_messages(code),
        "        struct_ser.serialize_field(\"spiffe_id\", &self.spiffe_id)?;\n        if let Some(v) = self.step.as_ref() {\n            match v {}\n        }\n"
    );
}
