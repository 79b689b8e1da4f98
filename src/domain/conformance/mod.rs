//! The upstream projects' own test tables, ported as this crate's table tests: one module per
//! upstream test file, each case citing the upstream file and test it comes from. Facts and cases
//! carry over, code does not. Where this crate deliberately differs, the case is kept with its
//! expected value inverted and a comment saying why; README's "deliberately differs" table lists
//! those differences.

mod distribution_normalize;
mod distribution_reference;
mod kubelet_config;
mod kubelet_keyring;
mod library_go_image_names;
mod library_go_reference;
mod library_go_trigger;
mod openshift_apiserver_imageutil;
mod runtime_utils_registries;
mod sysregistriesv2;
