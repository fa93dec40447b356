//! MIME multipart (RFC 2046) as cloud-init reads it, gzip, and the way back.

use std::io::{Read, Write};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::{Part, UserDataError};

/// The multipart document for `parts`. The boundary is derived from the content, so the
/// same parts always give the same bytes.
pub fn multipart(parts: &[Part]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.name.as_bytes());
        h.update([0]);
        h.update(p.body.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut boundary: String = "===============".into();
    for b in &digest[..10] {
        boundary.push_str(&format!("{b:02x}"));
    }
    boundary.push_str("==");
    // A body containing the boundary would break the document; lengthen until it is unique.
    while parts.iter().any(|p| p.body.contains(&boundary)) {
        boundary.insert(0, '=');
    }
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\nNumber-Attachments: {}\n\n",
        parts.len()
    );
    for p in parts {
        let ascii = p.body.is_ascii();
        out.push_str(&format!("--{boundary}\n"));
        out.push_str(&format!(
            "Content-Type: {}; charset=\"{}\"\nMIME-Version: 1.0\n",
            p.content_type,
            if ascii { "us-ascii" } else { "utf-8" }
        ));
        if ascii {
            out.push_str("Content-Transfer-Encoding: 7bit\n");
        } else {
            out.push_str("Content-Transfer-Encoding: base64\n");
        }
        out.push_str(&format!(
            "Content-Disposition: attachment; filename=\"{}\"\n\n",
            p.name.replace(['"', '\\', '\n', '\r'], "_")
        ));
        if ascii {
            // The line break before a delimiter belongs to the delimiter (RFC 2046), so
            // one is always added: the reader gets the body back byte for byte.
            out.push_str(&p.body);
            out.push('\n');
        } else {
            let b64 = base64::engine::general_purpose::STANDARD.encode(p.body.as_bytes());
            for chunk in b64.as_bytes().chunks(76) {
                out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    out.push_str(&format!("--{boundary}--\n"));
    out
}

/// gzip with a fixed header (no name, no time), so the bytes are reproducible.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// The parts of a user-data blob as cerveza writes it (gzip optional).
pub fn decode(blob: &[u8]) -> Result<Vec<Part>, UserDataError> {
    let bad = |m: &str| UserDataError::Decode(m.to_owned());
    let raw = if blob.starts_with(&[0x1f, 0x8b]) {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .take(1 << 20)
            .read_to_end(&mut s)
            .map_err(|e| bad(&format!("gzip: {e}")))?;
        s
    } else {
        blob.to_vec()
    };
    let text = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let header_end = text.find("\n\n").ok_or_else(|| bad("no MIME header"))?;
    let boundary = text[..header_end]
        .split("boundary=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or_else(|| bad("no multipart boundary"))?;
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in text[header_end..].split(&delim).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
        let (head, body) = chunk
            .split_once("\n\n")
            .ok_or_else(|| bad("part without header"))?;
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("Content-Type:")
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let name = header("Content-Disposition:")
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let body = if header("Content-Transfer-Encoding:") == "base64" {
            let joined: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .map_err(|e| bad(&format!("base64: {e}")))?;
            String::from_utf8(bytes).map_err(|_| bad("part is not UTF-8"))?
        } else {
            body.strip_suffix('\n').unwrap_or(body).to_owned()
        };
        parts.push(Part {
            name,
            content_type,
            body,
        });
    }
    Ok(parts)
}
