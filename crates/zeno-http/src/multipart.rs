//! `multipart/form-data` parsed on the host: fields go to PHP as values, files as temp
//! files PHP reads by path, deleted when the response has been built.

use std::convert::Infallible;
use std::io::Write as _;

use bytes::Bytes;
use tempfile::NamedTempFile;
use zeno_protocol::{FormField, Upload};

/// A parsed form. `files` owns the temp files; dropping it deletes them.
pub(crate) struct Form {
    pub fields: Vec<FormField>,
    pub uploads: Vec<Upload>,
    pub files: Vec<NamedTempFile>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum MultipartError {
    #[error("{0}")]
    Parse(#[from] multer::Error),
    #[error("could not store an uploaded file: {0}")]
    Store(#[from] std::io::Error),
}

pub(crate) async fn parse(content_type: &str, body: Bytes) -> Result<Form, MultipartError> {
    let boundary = multer::parse_boundary(content_type)?;
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form {
        fields: Vec::new(),
        uploads: Vec::new(),
        files: Vec::new(),
    };
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let content_type = field
                    .content_type()
                    .map(|mime| mime.to_string())
                    .unwrap_or_else(|| "application/octet-stream".into());
                let data = field.bytes().await?;
                let mut file = tempfile::Builder::new().prefix("zeno-up-").tempfile()?;
                file.write_all(&data)?;
                file.flush()?;
                form.uploads.push(Upload {
                    field: name,
                    name: file_name,
                    content_type,
                    size: data.len() as u64,
                    tmp_name: file.path().display().to_string(),
                    error: 0,
                });
                form.files.push(file);
            }
            None => {
                let value = field.text().await?;
                form.fields.push(FormField { name, value });
            }
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fields_and_files_are_split_and_files_deleted_on_drop() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n\
--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n\
--XX--\r\n";
        let form = parse("multipart/form-data; boundary=XX", Bytes::from(body))
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
        assert!(
            parse("multipart/form-data; boundary=XX", Bytes::from("garbage"))
                .await
                .is_err()
        );
        assert!(parse("multipart/form-data", Bytes::new()).await.is_err());
    }
}
