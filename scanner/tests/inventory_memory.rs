//! Layers stream through in bounded memory: a gzip layer of hundreds of megabytes, generated while it is read, leaves
//! the allocator's peak a few megabytes above where it started, and only the package database is kept.

mod layers;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use layers::{GZIP, inventory_file};
use scanner::inventory::{ImageInventory, MAX_FILE_BYTES, read_layer};

/// The system allocator, counting the bytes in use and the most ever in use.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn allocated(bytes: usize) {
    let in_use = IN_USE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(in_use, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocated(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        allocated(new_size);
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const BIG_FILE_BYTES: u64 = 160 << 20;
const BIG_EXECUTABLE_BYTES: u64 = 32 << 20;

/// Appends a file of `size` bytes that `contents` yields, without holding it.
fn append(tar: &mut tar::Builder<impl Write>, path: &str, mode: u32, size: u64, contents: impl Read) {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(mode);
    tar.append_data(&mut header, path, contents).unwrap();
}

#[test]
fn a_large_gzip_layer_streams_through_in_bounded_memory() {
    let status = inventory_file("debian12-minbase.status");
    let (reader, writer) = io::pipe().unwrap();
    let baseline = IN_USE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let producer = std::thread::spawn(move || {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(writer, flate2::Compression::fast()));
        append(&mut tar, "opt/data/big.bin", 0o644, BIG_FILE_BYTES, io::repeat(0).take(BIG_FILE_BYTES));
        // An executable is scanned for Go build info as it streams, to its last byte.
        let elf = io::Read::chain(&b"\x7fELF"[..], io::repeat(0)).take(BIG_EXECUTABLE_BYTES);
        append(&mut tar, "usr/local/bin/big", 0o755, BIG_EXECUTABLE_BYTES, elf);
        // Too large to be a real package database: skipped, never read.
        let huge = MAX_FILE_BYTES + 1;
        append(&mut tar, "var/lib/dpkg/status.d/huge", 0o644, huge, io::repeat(b'\n').take(huge));
        append(&mut tar, "var/lib/dpkg/status", 0o644, status.len() as u64, status.as_slice());
        tar.into_inner().unwrap().finish().unwrap();
    });
    let layer = read_layer(GZIP, reader).unwrap();
    producer.join().unwrap();
    let elapsed = started.elapsed();
    let peak_above_baseline = PEAK.load(Ordering::Relaxed) - baseline;

    let paths: Vec<&str> = layer.files.keys().map(String::as_str).collect();
    // The oversize file is listed without packages: whatever it holds, it replaces what a lower layer had there.
    assert_eq!(paths, ["usr/local/bin/big", "var/lib/dpkg/status", "var/lib/dpkg/status.d/huge"]);
    assert_eq!(layer.skipped.len(), 1);
    assert_eq!(layer.skipped[0].path, "var/lib/dpkg/status.d/huge");
    assert_eq!(ImageInventory::compose(&[layer]).packages.len(), 88);
    // The layer is 230 MB uncompressed; the reader's buffers, the gzip state and the 77 kB status file stay far below.
    assert!(peak_above_baseline < 2 << 20, "peak {peak_above_baseline} bytes above the baseline");
    // A few seconds in a debug build; the bound only catches a scan gone quadratic, not a busy machine.
    assert!(elapsed.as_secs() < 20, "{elapsed:?}");
    eprintln!("streamed in {elapsed:?}, peak {peak_above_baseline} bytes above the baseline");
}
