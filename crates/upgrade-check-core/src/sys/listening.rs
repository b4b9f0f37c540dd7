//! Which sockets listen on a TCP port, asked of the kernel's `sock_diag`.
//!
//! The kernel filters by state and port itself. `/proc/net/tcp` instead
//! lists every connection too, TIME_WAIT ones included: thousands on a busy
//! machine, read a page at a time, once per service start.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// `SOCK_DIAG_BY_FAMILY`: the request, and the type of each answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
/// `struct nlmsghdr`.
const HEADER: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, padding,
/// states, then a 48-byte `inet_diag_sockid` that starts with the port.
const REQUEST: usize = 56;
/// Where `idiag_inode` is in an `inet_diag_msg`: after four bytes of
/// family and state, the 48-byte socket id, then expiry, queues and uid.
const INODE_AT: usize = 4 + 48 + 16;

/// The inodes of the sockets listening on TCP `port`, IPv4 and IPv6;
/// `None` when the kernel cannot be asked (no netlink, no `inet_diag`).
pub(crate) fn inodes(port: u16) -> Option<Vec<u64>> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .ok()?;
    socket::connect(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).ok()?;
    let mut found = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let request = request(u8::try_from(family).ok()?, port);
        socket::send(fd.as_raw_fd(), &request, MsgFlags::empty()).ok()?;
        read_answers(&fd, &mut found)?;
    }
    Some(found)
}

/// A dump request for the listening TCP sockets of `family` on `port`.
fn request(family: u8, port: u16) -> Vec<u8> {
    let length = u32::try_from(HEADER + REQUEST).expect("a small message");
    let mut message = Vec::with_capacity(HEADER + REQUEST);
    message.extend_from_slice(&length.to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    message.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    message.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    message.extend_from_slice(&port.to_be_bytes());
    message.resize(HEADER + REQUEST, 0);
    message
}

/// Reads answers up to the dump's end, adding each socket's inode.
fn read_answers(fd: &OwnedFd, found: &mut Vec<u64>) -> Option<()> {
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        let received = socket::recv(fd.as_raw_fd(), &mut buffer, MsgFlags::empty()).ok()?;
        if received == 0 {
            return None;
        }
        let mut at = 0;
        while at + HEADER <= received {
            let length = u32::from_ne_bytes(buffer[at..at + 4].try_into().ok()?) as usize;
            let kind = u16::from_ne_bytes(buffer[at + 4..at + 6].try_into().ok()?);
            if length < HEADER || at + length > received {
                return None;
            }
            match kind {
                NLMSG_DONE => return Some(()),
                NLMSG_ERROR => return None,
                SOCK_DIAG_BY_FAMILY => {
                    let message = &buffer[at + HEADER..at + length];
                    let inode = message.get(INODE_AT..INODE_AT + 4)?;
                    found.push(u64::from(u32::from_ne_bytes(inode.try_into().ok()?)));
                }
                _ => {}
            }
            // Messages are aligned to four bytes.
            at += (length + 3) & !3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inode of the socket behind `fd`, as /proc names it.
    fn inode_of(fd: i32) -> u64 {
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let target = target.to_string_lossy();
        target
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    #[test]
    fn the_kernel_names_the_listeners_of_a_port_and_only_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // A connection to the port is no listener.
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let found = inodes(port).expect("sock_diag answers on Linux");
        assert_eq!(found, [inode_of(listener.as_raw_fd())]);
        assert!(!found.contains(&inode_of(other.as_raw_fd())));

        let v6 = std::net::TcpListener::bind("[::1]:0");
        if let Ok(v6) = v6 {
            let port = v6.local_addr().unwrap().port();
            assert_eq!(inodes(port).unwrap(), [inode_of(v6.as_raw_fd())]);
        }
        drop(listener);
        assert_eq!(inodes(port).unwrap(), Vec::<u64>::new());
    }
}
