//! The few bpf(2) commands the device program needs, as raw syscalls (no libbpf, no C): load
//! a program, attach it to a cgroup (BPF_F_ALLOW_MULTI, replacing berth's previous one),
//! query what a cgroup has attached, and read a program's name.
//!
//! No RLIMIT_MEMLOCK raise: kernels since 5.11 charge BPF memory to the memory cgroup
//! instead, and berth has no CAP_SYS_RESOURCE to raise a hard limit anyway.

use super::program::Insn;
use crate::error::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

/// Name berth gives its programs, to find its own among those attached (systemd's, say).
pub const PROG_NAME: &str = "berth_devices";

/// The prefix of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: `attr` is a live, initialised prefix of union bpf_attr of the size passed;
    // the kernel reads it (and for queries writes within the buffers it points to).
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd(r: i64) -> OwnedFd {
    // SAFETY: the kernel returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Loads the program; on a verifier refusal the error carries the verifier's log.
pub fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = b"Apache\0";
    let mut name = [0u8; 16];
    name[..PROG_NAME.len()].copy_from_slice(PROG_NAME.as_bytes());
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(r) => Ok(fd(r)),
        Err(e) => {
            // Again with the verifier's log, only to explain the failure.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let text = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).trim().to_string();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (needs CAP_SYS_ADMIN, and RLIMIT_MEMLOCK on kernels before 5.11)"
            } else {
                ""
            };
            Err(Error::Cgroup(format!(
                "load the device program: {e}{hint}{}",
                if text.is_empty() { String::new() } else { format!(": {text}") }
            )))
        }
    }
}

/// Ids of the device programs attached to the cgroup itself.
pub fn attached(cgroup: &impl AsRawFd) -> Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| Error::Cgroup(format!("query device programs: {e}")))?;
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// An fd of an attached program and whether berth made it (by its name).
fn open_by_id(id: u32) -> Result<(OwnedFd, bool)> {
    let mut attr = IdAttr { id, ..Default::default() };
    let prog = fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map_err(|e| Error::Cgroup(format!("open device program {id}: {e}")))?);
    // struct bpf_prog_info: name[16] sits at offset 64.
    let mut info = [0u8; 128];
    let mut attr = InfoAttr { bpf_fd: prog.as_raw_fd() as u32, info_len: info.len() as u32, info: info.as_mut_ptr() as u64 };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|e| Error::Cgroup(format!("inspect device program {id}: {e}")))?;
    let name = &info[64..80];
    let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(16)];
    Ok((prog, name == PROG_NAME.as_bytes()))
}

/// Attaches `prog` to the cgroup next to whatever else is attached (BPF_F_ALLOW_MULTI: every
/// program must allow an access, so systemd's program and berth's both apply), replacing
/// berth's previous program atomically (BPF_F_REPLACE) so there is no moment without one.
pub fn attach(cgroup: &impl AsRawFd, prog: &OwnedFd) -> Result<()> {
    let mut ours = Vec::new();
    for id in attached(cgroup)? {
        let (p, mine) = open_by_id(id)?;
        if mine {
            ours.push(p);
        }
    }
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    let replaced = ours.pop();
    if let Some(old) = &replaced {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = old.as_raw_fd() as u32;
    }
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| Error::Cgroup(format!("attach the device program: {e}")))?;
    // More than one of ours (an interrupted update): the new one covers them all.
    for old in ours {
        let mut attr = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut attr).map_err(|e| Error::Cgroup(format!("detach an old device program: {e}")))?;
    }
    Ok(())
}
