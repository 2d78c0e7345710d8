"""Code that runs inside the sandboxes, on the standard library only: the wire format (wire.py), the program
process's server (program_side.py) and the test process's runner (test_side.py). The directory is bound
read-only into each sandbox and put first on its sys.path; the host imports only wire.py."""
