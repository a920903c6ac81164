//! What the loader checks of a plugin file before opening it (which runs its code): that it exists, is a
//! regular file, and starts with a shared-library header for this machine.

use std::io::Read;
use std::path::Path;

use super::refuse;
use crate::error::Result;

/// Whether `head` starts like a shared library (ELF, Mach-O, or PE).
fn looks_like_library(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 7] = [
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"MZ",
    ];
    MAGICS.iter().any(|m| head.starts_with(m))
}

/// The ELF machine number of the architecture this program was built for (`e_machine`), where known.
fn elf_machine() -> Option<u16> {
    if cfg!(target_arch = "x86_64") {
        Some(62)
    } else if cfg!(target_arch = "aarch64") {
        Some(183)
    } else if cfg!(target_arch = "x86") {
        Some(3)
    } else if cfg!(target_arch = "arm") {
        Some(40)
    } else if cfg!(target_arch = "riscv64") || cfg!(target_arch = "riscv32") {
        Some(243)
    } else if cfg!(target_arch = "powerpc64") {
        Some(21)
    } else if cfg!(target_arch = "s390x") {
        Some(22)
    } else {
        None
    }
}

/// Checks an ELF header (the first 20 bytes or fewer) against this program: class (32/64-bit), byte order,
/// type (a shared object) and machine. Other formats pass (the dynamic loader checks them).
fn check_elf_header(head: &[u8]) -> std::result::Result<(), String> {
    if !head.starts_with(b"\x7fELF") {
        return Ok(());
    }
    if head.len() < 20 {
        return Err("a truncated ELF header".to_owned());
    }
    let class = if cfg!(target_pointer_width = "64") { 2 } else { 1 };
    if head[4] != class {
        let bits = |c: u8| {
            if c == 2 {
                "64-bit"
            } else if c == 1 {
                "32-bit"
            } else {
                "unknown-class"
            }
        };
        return Err(format!("a {} ELF file, this program is {}", bits(head[4]), bits(class)));
    }
    let little = cfg!(target_endian = "little");
    if head[5] != if little { 1 } else { 2 } {
        return Err("an ELF file of the other byte order".to_owned());
    }
    let half = |at: usize| {
        let b = [head[at], head[at + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    // ET_DYN: a shared object (ET_EXEC, an executable, and ET_REL, an object file, cannot be loaded).
    if half(16) != 3 {
        return Err(format!("an ELF file that is not a shared object (type {})", half(16)));
    }
    if let Some(machine) = elf_machine() {
        if half(18) != machine {
            return Err(format!(
                "an ELF file for another architecture (machine {}, this program: {machine})",
                half(18)
            ));
        }
    }
    Ok(())
}

/// Checks that the file exists and looks like a shared library for this machine, before handing it to the
/// dynamic loader (which runs the library's initializers as it opens it): the cheap checks first.
pub(super) fn check_file(path: &Path) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(refuse(path, "no such file")),
        Err(e) => return Err(refuse(path, format!("cannot read it: {e}"))),
    };
    if meta.is_dir() {
        return Err(refuse(path, "it is a directory, not a shared library"));
    }
    let mut head = [0u8; 20];
    let mut read = 0;
    let mut file = std::fs::File::open(path).map_err(|e| refuse(path, format!("cannot read it: {e}")))?;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(refuse(path, format!("cannot read it: {e}"))),
        }
    }
    if !looks_like_library(&head[..read]) {
        return Err(refuse(path, "not a shared library (no ELF, Mach-O or PE header)"));
    }
    check_elf_header(&head[..read]).map_err(|why| refuse(path, format!("not a shared library for this program: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::registry::Registry;

    #[test]
    fn files_that_are_not_libraries_are_refused_before_loading() {
        let dir = std::env::temp_dir().join(format!("kombu-plugin-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("plugin.txt");
        std::fs::write(&text, "just text\n").unwrap();
        let empty = dir.join("empty.so");
        std::fs::write(&empty, "").unwrap();
        let reg = Registry::empty();
        for (p, why) in [(&text, "not a shared library"), (&empty, "not a shared library"), (&dir, "directory")] {
            let e = reg.load_plugin(p).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Plugin);
            assert!(e.to_string().contains(why), "{e}");
        }
        assert!(reg.aliases().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn elf_headers_of_other_machines_are_refused() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut ours = exe[..20].to_vec();
        ours[16] = 3; // ET_DYN: the test binary may be a PIE (already 3) or an executable.
        ours[17] = 0;
        if cfg!(target_endian = "big") {
            ours.swap(16, 17);
        }
        assert_eq!(check_elf_header(&ours), Ok(()));
        let mut other_class = ours.clone();
        other_class[4] ^= 3;
        assert!(check_elf_header(&other_class).unwrap_err().contains("-bit ELF file"));
        let mut other_order = ours.clone();
        other_order[5] ^= 3;
        assert!(check_elf_header(&other_order).unwrap_err().contains("byte order"));
        let mut object = ours.clone();
        object[16] = 1;
        object[17] = 0;
        assert!(check_elf_header(&object).unwrap_err().contains("not a shared object"));
        if elf_machine().is_some() {
            let mut other_machine = ours.clone();
            other_machine[18] ^= 0x40;
            assert!(check_elf_header(&other_machine).unwrap_err().contains("another architecture"));
        }
        assert!(check_elf_header(b"\x7fELF\x02").unwrap_err().contains("truncated"));
        assert_eq!(check_elf_header(b"MZ"), Ok(()));
    }

    #[test]
    fn magic_numbers() {
        assert!(looks_like_library(b"\x7fELF"));
        assert!(looks_like_library(b"MZ\x90\x00"));
        assert!(!looks_like_library(b"#!/b"));
        assert!(!looks_like_library(b""));
    }
}
