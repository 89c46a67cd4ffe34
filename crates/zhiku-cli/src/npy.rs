//! NumPy `.npy` matrices (format 1.0–3.0, little-endian, C order): float vectors in, int64 ids
//! out — the exchange format of `zhiku vectors bench` and `zhiku embed`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// A row-major matrix of `rows × cols` floats.
#[derive(Debug)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
    /// Where the values start in the file when they are stored as float32 (readable in
    /// place, e.g. memory-mapped); `None` for float64.
    pub f32_offset: Option<usize>,
}

pub fn read_f32(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_f32(&bytes).with_context(|| format!("{} is not a 2-D float32/float64 .npy matrix", path.display()))
}

fn parse_f32(bytes: &[u8]) -> Result<Matrix> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("no .npy magic");
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("unsupported .npy version {v}"),
    };
    let data_start = header_start + header_len;
    let header = std::str::from_utf8(bytes.get(header_start..data_start).context("truncated header")?).context("header is not text")?;
    let field = |name: &str| -> Option<&str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").context("no descr")?;
    let width = if descr.starts_with("'<f4'") || descr.starts_with("'float32'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!("dtype {} (want little-endian float32 '<f4' or float64 '<f8')", descr.split(',').next().unwrap_or(descr));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        bail!("Fortran order (save it with numpy.ascontiguousarray)");
    }
    let shape = field("shape").context("no shape")?;
    let inner = shape.strip_prefix('(').and_then(|s| s.split(')').next()).context("bad shape")?;
    let dims: Vec<usize> = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else { bail!("shape ({inner}) is not 2-D") };
    let payload = &bytes[data_start..];
    let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(width)).context("shape too large")?;
    if payload.len() < expected {
        bail!("{} data bytes for shape ({rows}, {cols}), want {expected}", payload.len());
    }
    let data = if width == 4 {
        payload[..expected].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        payload[..expected].chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
    };
    Ok(Matrix { rows, cols, data, f32_offset: (width == 4).then_some(data_start) })
}

fn header(descr: &str, rows: usize, cols: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + dict + newline, padded to a multiple of 64.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

pub fn write_i64(path: &Path, rows: usize, cols: usize, values: &[i64]) -> Result<()> {
    let mut out = header("<i8", rows, cols);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    write(path, &out)
}

pub fn write_f32(path: &Path, rows: usize, cols: usize, values: &[f32]) -> Result<()> {
    let mut out = header("<f4", rows, cols);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    write(path, &out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_matrices_round_trip_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        write_f32(&path, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]).unwrap();
        let m = read_f32(&path).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
        assert!(parse_f32(&bytes[..bytes.len() - 4]).is_err(), "truncated data");
        assert!(parse_f32(b"not numpy at all").is_err());
        let ids = dir.path().join("ids.npy");
        write_i64(&ids, 1, 2, &[7, -1]).unwrap();
        assert!(read_f32(&ids).unwrap_err().to_string().contains("not a 2-D float32"));
    }
}
