//! `multipart/form-data` parsed on the host as it arrives: fields go to PHP as values, files
//! are written chunk by chunk to temp files PHP reads by path. The temp files live as long as
//! the [`Form`]'s `files`, which the pool holds until the request has fully ended.

use bytes::Bytes;
use futures_util::Stream;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt as _;
use zeno_protocol::{FormField, Upload};

use crate::body::ReadError;

/// A parsed form. `files` owns the temp files; dropping it deletes them.
pub(crate) struct Form {
    pub fields: Vec<FormField>,
    pub uploads: Vec<Upload>,
    pub files: Vec<TempPath>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MultipartError {
    /// Reading the body failed (too large, too slow, connection lost).
    #[error(transparent)]
    Body(ReadError),
    #[error("malformed multipart body")]
    Parse(#[source] multer::Error),
    #[error("could not store an uploaded file")]
    Store(#[from] std::io::Error),
}

impl From<multer::Error> for MultipartError {
    fn from(err: multer::Error) -> Self {
        // multer wraps the stream's own error: keep its kind (413, 408) visible.
        if let multer::Error::StreamReadFailed(inner) = &err {
            if let Some(read) = inner.downcast_ref::<ReadError>() {
                return MultipartError::Body(read.clone());
            }
        }
        MultipartError::Parse(err)
    }
}

/// Who uploaded files must belong to, so that workers running as another user can read and
/// move them.
pub(crate) type Owner = Option<(u32, u32)>;

pub(crate) async fn parse<S>(
    content_type: &str,
    body: S,
    owner: Owner,
) -> Result<Form, MultipartError>
where
    S: Stream<Item = Result<Bytes, ReadError>> + Send + Unpin + 'static,
{
    let boundary = multer::parse_boundary(content_type)?;
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut form = Form {
        fields: Vec::new(),
        uploads: Vec::new(),
        files: Vec::new(),
    };
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_owned();
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            let value = field.text().await?;
            form.fields.push(FormField { name, value });
            continue;
        };
        let content_type = field
            .content_type()
            .map(|mime| mime.to_string())
            .unwrap_or_else(|| "application/octet-stream".into());
        let (file, path) = tempfile::Builder::new()
            .prefix("zeno-up-")
            .tempfile()?
            .into_parts();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // Registered before the first byte, so a failure below still deletes the file.
        let tmp_name = path.display().to_string();
        form.files.push(path);
        let mut file = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await? {
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        form.uploads.push(Upload {
            field: name,
            name: file_name,
            content_type,
            size,
            tmp_name,
            error: 0,
        });
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stream(
        body: &'static str,
    ) -> impl Stream<Item = Result<Bytes, ReadError>> + Send + Unpin + 'static {
        crate::body::chunks(
            http_body_util::Full::new(Bytes::from(body)),
            1024,
            Duration::from_secs(1),
        )
    }

    #[tokio::test]
    async fn fields_and_files_are_split_and_files_deleted_on_drop() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n\
--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n\
--XX--\r\n";
        let form = parse("multipart/form-data; boundary=XX", stream(body), None)
            .await
            .expect("parse");
        assert_eq!(
            form.fields,
            vec![FormField {
                name: "title".into(),
                value: "hello".into()
            }]
        );
        assert_eq!(form.uploads.len(), 1);
        let upload = &form.uploads[0];
        assert_eq!(upload.name, "a.txt");
        assert_eq!(upload.content_type, "text/plain");
        assert_eq!(upload.size, 9);
        assert_eq!(
            std::fs::read_to_string(&upload.tmp_name).expect("read"),
            "file body"
        );
        let path = upload.tmp_name.clone();
        drop(form);
        assert!(!std::path::Path::new(&path).exists());
    }

    #[tokio::test]
    async fn malformed_body_is_an_error() {
        assert!(matches!(
            parse("multipart/form-data; boundary=XX", stream("garbage"), None).await,
            Err(MultipartError::Parse(_))
        ));
        assert!(parse("multipart/form-data", stream(""), None)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_keeps_its_kind() {
        let big: &'static str = Box::leak(
            format!(
                "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n{}\r\n--XX--\r\n",
                "x".repeat(4096)
            )
            .into_boxed_str(),
        );
        let result = parse("multipart/form-data; boundary=XX", stream(big), None).await;
        assert!(
            matches!(result, Err(MultipartError::Body(ReadError::TooLarge(1024)))),
            "{:?}",
            result.err()
        );
    }
}
