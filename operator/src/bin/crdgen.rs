//! Prints the ZeroStack CRD as YAML, so `crds/` is generated from the Rust types and never
//! edited by hand (`cargo run -p zerostack-operator --bin crdgen > crds/zerostack.dev_zerostacks.yaml`).

fn main() {
    print!("{}", zerostack_operator::crdgen::crd_yaml());
}
