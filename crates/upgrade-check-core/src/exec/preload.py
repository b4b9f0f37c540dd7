"""The preloader: a Python service's third-party modules imported once, a service forked per run.

Started by the harness as `python -c THIS SOURCE`, in the cell's
environment, with its standard input one end of a socket pair: the control
channel. Nothing else can reach it: the socket has no name, and no process
but the harness holds the other end. It imports the installed modules that
the service's source imports (what each service start would otherwise
import again), says it is ready on stdout, and then serves fork requests:
each control message carries two descriptors, a connection of the
harness's making and the run's log. The connection brings a JSON request;
the preloader forks, the child becomes the service, as `python -m MODULE`
or `python SCRIPT` would have started it, and the connection carries back
`pid N`, then `exit STATUS` when the child ends. A service it forks holds
neither the control channel nor any other run's connection.

What the imports printed (deprecation warnings, mostly) is replayed at the
top of every run's log, where a cold start would have printed it.
"""

import ast
import ctypes
import gc
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import sysconfig
import tempfile
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWPID = 0x20000000
SKIPPED_FOLDERS = {"__pycache__", "node_modules", ".git", ".venv", "venv", ".tox", ".nox"}

libc = ctypes.CDLL(None, use_errno=True)


def imported_names(root):
    """Every absolute module name the service's source imports, in order of first sight."""
    names = []
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(
            name
            for name in folders
            if name not in SKIPPED_FOLDERS
            and not os.path.exists(os.path.join(folder, name, "pyvenv.cfg"))
        )
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            try:
                with open(os.path.join(folder, file), "rb") as source:
                    tree = ast.parse(source.read())
            except (OSError, SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.extend(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.append(node.module)
    return list(dict.fromkeys(names))


def installed(name, root, site):
    """Whether top-level `name` comes from the environment's site-packages,
    and not from the service's own source, which is found first when it runs."""
    top = name.partition(".")[0]
    if os.path.exists(os.path.join(root, top + ".py")) or os.path.isdir(os.path.join(root, top)):
        return False
    import importlib.util

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    return any(
        os.path.realpath(place).startswith(folder + os.sep)
        for place in places
        if place
        for folder in site
    )


def preload(root):
    """Imports the service's installed modules; what was imported, what failed, and what they printed."""
    paths = sysconfig.get_paths()
    site = {os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])}
    with tempfile.TemporaryFile() as printed:
        saved = os.dup(1), os.dup(2)
        os.dup2(printed.fileno(), 1)
        os.dup2(printed.fileno(), 2)
        imported, failed = [], []
        try:
            for name in imported_names(root):
                if not installed(name, root, site):
                    continue
                try:
                    __import__(name)
                    imported.append(name)
                except BaseException as error:  # noqa: BLE001 - the service imports it itself then
                    failed.append(f"{name}: {type(error).__name__}: {error}")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        printed.seek(0)
        return imported, failed, printed.read()


def take_control():
    """The control channel from standard input, which then reads nothing (as a
    cold start's /dev/null): what the imports run never sees the channel there."""
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return control


def next_fork(control):
    """The next fork request's connection and log descriptor; None once the harness has gone."""
    _, fds, _, _ = socket.recv_fds(control, 16, 2)
    if not fds:
        return None
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        raise ValueError("a fork request carries a connection and the log's descriptor")
    connection = socket.socket(fileno=fds[0])
    connection.settimeout(10)
    return connection, fds[1]


def started_at_import():
    """The processes the imports left running (a library that starts a daemon
    as it is imported): `pid command` each. Started cold, such a process is
    the service's own, and its leak check sees it; here it would be the
    preloader's, unseen."""
    started = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids = children.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    state = stat.read().rpartition(")")[2].split()[0]
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
                if not command:  # between its fork and its exec
                    with open(f"/proc/{pid}/comm") as comm:
                        command = comm.read().strip()
            except (OSError, IndexError):
                continue
            if state != "Z":
                started.append(f"{pid} {command}")
    return started


def receive(connection):
    """One request: a length-prefixed JSON object."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
        more = connection.recv(1 << 20)
        if not more:
            raise EOFError("the request ended early")
        data += more
    return json.loads(data[4 : 4 + struct.unpack("<I", data[:4])[0]])


def die_with_parent():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def exit_like(status):
    """Ends this process as the child whose wait status is `status` ended."""
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def become_service(request, printed):
    """Runs the service's command in this (forked) process and never returns."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if printed:
        os.write(2, printed)
    if request["module"] is not None:
        sys.argv = [request["module"], *request["args"]]
        sys.path[0] = request["cwd"]
    else:
        script = os.path.join(request["cwd"], request["script"])
        sys.argv = [request["script"], *request["args"]]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
    code = 0
    try:
        if request["module"] is not None:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - as the interpreter would: print it, exit 1
        traceback.print_exc()
        code = 1
    try:
        import threading

        threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code & 0xFF)


def child(request, log, printed, server):
    """The forked side: its own group, its log, dies with the preloader; a PID
    namespace of its own when asked (as `unshare --pid --fork --kill-child`)."""
    os.setpgid(0, 0)
    die_with_parent()
    if os.getppid() != server:
        os._exit(1)
    for handled in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(handled, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    if request["namespace"] and libc.unshare(CLONE_NEWPID) == 0:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        init = os.fork()
        if init == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
            die_with_parent()
            become_service(request, printed)
        _, status = os.waitpid(init, 0)
        exit_like(status)
    # Whatever the service starts and orphans stays its descendant, to be found.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    become_service(request, printed)


def stop(*_):
    """Stopped by the harness: the services it forked, and their orphans, go first."""
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids = [int(pid) for pid in children.read().split()]
        except OSError:
            continue
        for pid in pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    os._exit(0)


def serve(control, summary, printed):
    server = os.getpid()
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, stop)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup_read, selectors.EVENT_READ)
    waiting = {}
    print(json.dumps(summary), flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                try:
                    fork = next_fork(control)
                except (OSError, ValueError) as error:
                    print(f"a fork request was malformed: {error}", flush=True)
                    continue
                if fork is None:
                    stop()
                connection, log = fork
                try:
                    request = receive(connection)
                except (OSError, ValueError, EOFError) as error:
                    try:
                        connection.sendall(f"error {error}\n".encode())
                    except OSError:
                        pass
                    connection.close()
                    os.close(log)
                    continue
                pid = os.fork()
                if pid == 0:
                    try:
                        signal.set_wakeup_fd(-1)
                        selector.close()
                        control.close()
                        for other in waiting.values():
                            other.close()
                        connection.close()
                        os.close(wakeup_read)
                        os.close(wakeup_write)
                        child(request, log, printed, server)
                    finally:
                        os._exit(70)
                os.close(log)
                connection.sendall(f"pid {pid}\n".encode())
                waiting[pid] = connection
            else:
                os.read(wakeup_read, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    connection = waiting.pop(pid, None)
                    if connection is not None:
                        try:
                            connection.sendall(f"exit {status}\n".encode())
                        except OSError:
                            pass
                        connection.close()


def main():
    root = sys.argv[1]
    control = take_control()
    die_with_parent()
    # Orphans of the services it forks come back to it, and die with it.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # What the imports make lives as long as the preloader: no collection
    # while they run, and none in a forked service ever walks (and so
    # copies, page by page) what they made. Python's own advice for a
    # process that forks without exec (`gc.freeze`).
    gc.disable()
    imported, failed, printed = preload(root)
    gc.freeze()
    gc.enable()
    summary = {"imported": imported, "failed": failed, "started": started_at_import()}
    serve(control, summary, printed)


main()
