//! OSV exports as the OSV project publishes them (`<ecosystem>/all.zip`: one JSON record per file): their records
//! read one at a time, so an archive of any size costs one record's memory.

use std::io::{Read, Seek};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a zip archive: {0}")]
    NotZip(zip::result::ZipError),
    #[error("entry {position}: {source}")]
    Entry { position: usize, source: zip::result::ZipError },
    #[error("{name}: {source}")]
    Read { name: String, source: std::io::Error },
}

/// Hands `visit` every `*.json` file of the zip `archive`, in archive order, as (file name, bytes); stops at the first
/// error `visit` returns. Returns how many files were visited.
pub fn each_json_file<R, E>(archive: R, mut visit: impl FnMut(&str, Vec<u8>) -> Result<(), E>) -> Result<usize, E>
where
    R: Read + Seek,
    E: From<ArchiveError>,
{
    let mut archive = zip::ZipArchive::new(archive).map_err(ArchiveError::NotZip)?;
    let mut visited = 0;
    for position in 0..archive.len() {
        let mut entry = archive.by_index(position).map_err(|source| ArchiveError::Entry { position, source })?;
        let name = entry.name().map_err(|source| ArchiveError::Entry { position, source })?.into_owned();
        if !entry.is_file() || !name.ends_with(".json") {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry.read_to_end(&mut bytes).map_err(|source| ArchiveError::Read { name: name.clone(), source })?;
        visit(&name, bytes)?;
        visited += 1;
    }
    Ok(visited)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, contents) in files {
            writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            writer.write_all(contents).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn json_files_come_out_in_archive_order_and_others_are_left_out() {
        let archive = zip_of(&[("b.json", b"{\"id\": \"B\"}"), ("README", b"not a record"), ("dir/a.json", b"{\"id\": \"A\"}")]);
        let mut seen = Vec::new();
        let visited = each_json_file(Cursor::new(archive), |name, bytes| {
            seen.push((name.to_owned(), bytes));
            Ok::<_, ArchiveError>(())
        })
        .unwrap();
        assert_eq!(visited, 2);
        assert_eq!(seen, [("b.json".to_owned(), b"{\"id\": \"B\"}".to_vec()), ("dir/a.json".to_owned(), b"{\"id\": \"A\"}".to_vec())]);
    }

    #[test]
    fn what_is_no_zip_is_refused() {
        let refused = each_json_file(Cursor::new(b"PK but not really".to_vec()), |_, _| Ok::<_, ArchiveError>(()));
        assert!(matches!(refused, Err(ArchiveError::NotZip(_))), "{refused:?}");
    }
}
