//! Build identity stamped by `build.rs`.

pub const TAG: &str = env!("LOGWISP_VERSION_TAG");
pub const COMMIT: &str = env!("LOGWISP_COMMIT");
pub const BUILD_TIME: &str = env!("LOGWISP_BUILD_TIME");

/// The one line `--version` prints.
pub fn line() -> String {
    format!("logwisp {TAG} (commit {COMMIT}, built {BUILD_TIME})")
}
