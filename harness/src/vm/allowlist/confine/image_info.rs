//! What `qemu-img info` says about one image file: the part of its JSON
//! answer that matters here.

/// The part of `qemu-img info --output=json` that matters here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct ImageInfo {
    pub format: String,
    /// The backing file's name as stored in the image.
    pub backing_filename: Option<String>,
    /// That name as QEMU opens it: relative to the image's own path.
    pub full_backing_filename: Option<String>,
    pub backing_filename_format: Option<String>,
    format_specific: Option<FormatSpecific>,
}

#[derive(Debug, serde::Deserialize)]
struct FormatSpecific {
    data: Option<serde_json::Value>,
}

impl ImageInfo {
    /// A qcow2 image can keep its data in a file of its own, named anywhere.
    pub fn data_file(&self) -> Option<&str> {
        self.format_specific
            .as_ref()?
            .data
            .as_ref()?
            .get("data-file")?
            .as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_backing_file_and_an_external_data_file() {
        let json = r#"{
            "format": "qcow2",
            "backing-filename": "base.qcow2",
            "full-backing-filename": "clones/../base.qcow2",
            "backing-filename-format": "qcow2",
            "format-specific": {"type": "qcow2", "data": {"data-file": "data.raw"}}
        }"#;
        let info: ImageInfo = serde_json::from_str(json).expect("qemu-img's JSON");
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.backing_filename.as_deref(), Some("base.qcow2"));
        assert_eq!(
            info.full_backing_filename.as_deref(),
            Some("clones/../base.qcow2")
        );
        assert_eq!(info.backing_filename_format.as_deref(), Some("qcow2"));
        assert_eq!(info.data_file(), Some("data.raw"));
    }
}
