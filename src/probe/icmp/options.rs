//! Socket options of an ICMP check's echoes (`dont_fragment`, `ttl`, `source`, `dscp`),
//! set once on the socket the checks sharing them use.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use socket2::SockRef;
use surge_ping::{AsyncSocket, ICMP};

use crate::config::IcmpPath;

/// Sets `path`'s options on `socket`. Don't-fragment uses the kernel's "probe" mode (as
/// tracepath does): the DF bit is set and the path MTU the kernel may have learnt is
/// ignored, so every run measures the path as it is — only the interface MTU still
/// refuses a bigger echo at once (reported as a send error).
pub(super) fn apply(socket: &AsyncSocket, kind: ICMP, path: &IcmpPath) -> std::io::Result<()> {
    // SAFETY: the descriptor belongs to `socket`, which outlives `fd`.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.get_native_sock()) };
    let sock = SockRef::from(&fd);
    if let Some(source) = path.source {
        sock.bind(&SocketAddr::new(source, 0).into())?;
    }
    match kind {
        ICMP::V4 => {
            if let Some(ttl) = path.ttl {
                sock.set_ttl_v4(u32::from(ttl))?;
            }
            if let Some(dscp) = path.dscp {
                sock.set_tos_v4(u32::from(dscp) << 2)?;
            }
            if path.dont_fragment {
                set_int(&fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_PROBE)?;
            }
        }
        ICMP::V6 => {
            if let Some(ttl) = path.ttl {
                sock.set_unicast_hops_v6(u32::from(ttl))?;
            }
            if let Some(dscp) = path.dscp {
                set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, libc::c_int::from(dscp) << 2)?;
            }
            if path.dont_fragment {
                set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_PROBE)?;
                set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)?;
            }
        }
    }
    Ok(())
}

/// `setsockopt` of one integer (the options socket2 does not name).
fn set_int(fd: &BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor and a pointer to one c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
