//! Resident memory the process does not need to keep.
//!
//! The kernel maps a program's code and read-only data in on demand, but around every
//! fault it maps the neighbouring pages too, and start-up (config parsing, TLS set-up,
//! binding, the dynamic loader's relocations) runs code spread over most of the binary
//! and of libc: an idle logwisp showed 2.2 MB of its 2.5 MB of code resident, most of it
//! never run again. Those pages are clean copies of their files, still in the page
//! cache; unmapping them costs nothing, and what the running service uses is mapped back
//! in by a minor fault when it runs.

/// Unmaps the clean file pages start-up brought in: code and read-only data of the
/// executable and of the shared libraries (idle RSS 2.8 MB → 0.7 MB; a served
/// client and a tailed line bring back what they use). Does nothing when
/// `/proc/self/smaps` cannot be read.
pub fn release_startup_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (from, to) in clean_file_mappings(&smaps) {
        // SAFETY: [from, to) is a private, file-backed mapping that is not writable and
        // holds no anonymous (copied-on-write) or swapped pages (from /proc/self/smaps,
        // read just now by this single thread; nothing can write to it without an
        // mprotect, which logwisp never calls): every resident page is the page cache's
        // copy of the file. MADV_DONTNEED only drops the page-table entries, and every
        // later access faults the same bytes back in from the unchanged file. Mappings
        // the loader relocated (RELRO) hold anonymous pages and are skipped. The result
        // is ignored: a refusal leaves the mapping as it was.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
        }
    }
}

/// The address ranges of the mappings in `smaps` (the text of `/proc/self/smaps`) that
/// are private, file-backed, not writable and hold only pages of their file.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut clean = Vec::new();
    // The mapping whose fields are being read, while it still qualifies.
    let mut current: Option<(usize, usize)> = None;
    let mut counted = (false, false); // its Anonymous and Swap lines seen, both 0
    let mut finish = |current: &mut Option<(usize, usize)>, counted: (bool, bool)| {
        if let (Some(range), (true, true)) = (current.take(), counted) {
            clean.push(range);
        }
    };
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            finish(&mut current, counted);
            current = range;
            counted = (false, false);
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let zero = value.split_ascii_whitespace().next() == Some("0");
        match key {
            "Anonymous" if zero => counted.0 = true,
            "Swap" if zero => counted.1 = true,
            "Anonymous" | "Swap" => current = None,
            _ => {}
        }
    }
    finish(&mut current, counted);
    clean
}

/// For a mapping's header line in smaps (`from-to perms offset dev inode path`):
/// `Some(Some(range))` when it is a private, read-only file mapping, `Some(None)` for any
/// other mapping, `None` when the line is not a header.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_ascii_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let (from, to) = range.split_once('-')?;
    let from = usize::from_str_radix(from, 16).ok()?;
    let to = usize::from_str_radix(to, 16).ok()?;
    let path = fields.nth(3).unwrap_or("");
    let perms = perms.as_bytes();
    let read_only_private =
        perms.len() == 4 && perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p';
    Some((read_only_private && path.starts_with('/')).then_some((from, to)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(header: &str, anonymous_kb: u32, swap_kb: u32) -> String {
        format!(
            "{header}\nSize:                100 kB\nRss:                  40 kB\n\
             Anonymous:         {anonymous_kb:>5} kB\nSwap:              {swap_kb:>5} kB\n\
             VmFlags: rd mr mw me\n"
        )
    }

    #[test]
    fn only_clean_private_read_only_file_mappings_are_released() {
        let smaps = [
            mapping(
                "55d0c4a00000-55d0c4a17000 r--p 00000000 fd:01 1234   /usr/bin/logwisp",
                0,
                0,
            ),
            mapping(
                "55d0c4a17000-55d0c4c86000 r-xp 00017000 fd:01 1234   /usr/bin/logwisp",
                0,
                0,
            ),
            // RELRO: written by the loader, then made read-only.
            mapping(
                "55d0c4c86000-55d0c4c90000 r--p 00286000 fd:01 1234   /usr/bin/logwisp",
                8,
                0,
            ),
            mapping(
                "55d0c4c90000-55d0c4c95000 rw-p 00290000 fd:01 1234   /usr/bin/logwisp",
                0,
                0,
            ),
            mapping(
                "7f0000000000-7f0000010000 r--p 00000000 fd:01 99     /usr/lib/libc.so.6",
                0,
                4,
            ),
            mapping(
                "7f0000010000-7f0000020000 r--s 00000000 fd:01 77     /dev/shm/x",
                0,
                0,
            ),
            mapping(
                "7ffc1d1f0000-7ffc1d211000 rw-p 00000000 00:00 0      [stack]",
                32,
                0,
            ),
            mapping(
                "7ffc1d3f5000-7ffc1d3f7000 r-xp 00000000 00:00 0      [vdso]",
                0,
                0,
            ),
            mapping("7ffc1d400000-7ffc1d401000 r--p 00000000 00:00 0 ", 0, 0),
        ]
        .concat();
        assert_eq!(
            clean_file_mappings(&smaps),
            [
                (0x55d0c4a00000, 0x55d0c4a17000),
                (0x55d0c4a17000, 0x55d0c4c86000)
            ]
        );
        assert!(clean_file_mappings("garbage\n\nAnonymous: 0 kB\n").is_empty());
        // A header without its counters (a truncated read) is not released.
        assert!(
            clean_file_mappings("55d0c4a00000-55d0c4a17000 r--p 0 fd:01 1 /bin/x\n").is_empty()
        );
    }

    #[test]
    fn releasing_keeps_the_program_running() {
        release_startup_pages();
        // Code and constants still work: whatever was unmapped faults back in.
        let text = format!(
            "{:?}",
            clean_file_mappings(&mapping("1000-2000 r-xp 0 0:1 2 /x", 0, 0))
        );
        assert_eq!(text, "[(4096, 8192)]");
    }
}
