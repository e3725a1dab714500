//! hugetlb controller: v1 `hugetlb.<size>.limit_in_bytes`, v2 `hugetlb.<size>.max`.

use oci_spec::runtime::LinuxHugepageLimit;

use super::resources::{refuse, set, At};
use super::Cgroup;
use crate::error::Result;

impl Cgroup {
    pub(super) fn hugepages(&self, h: &LinuxHugepageLimit) -> Result<()> {
        let field = format!("linux.resources.hugepageLimits[{}]", h.page_size());
        if !valid_page_size(h.page_size()) {
            return Err(refuse(&field, "pageSize must be a size like 2MB or 1GB"));
        }
        let at = self.need("hugetlb", &field)?;
        let file = hugetlb_file(h.page_size(), matches!(at, At::V2(_)));
        if !at.dir().join(&file).exists() {
            return Err(refuse(
                &field,
                format!(
                    "this host has no {} huge pages ({file} is missing)",
                    h.page_size()
                ),
            ));
        }
        set(at.dir(), &file, &h.limit().to_string(), &field)
    }
}

pub(super) fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB")
}

pub(super) fn hugetlb_file(page_size: &str, v2: bool) -> String {
    if v2 {
        format!("hugetlb.{page_size}.max")
    } else {
        format!("hugetlb.{page_size}.limit_in_bytes")
    }
}
