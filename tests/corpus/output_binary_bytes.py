# expect: completed
# must-contain: end-of-binary
# must-contain: ���NUL�
# must-contain: stderr survived the fake headers
# must-not-contain: LEAK
# Bytes that are not text: NUL, every byte value, invalid UTF-8, lone surrogates encoded the
# wrong way, terminal escapes, and bytes that look like Docker's own stream headers. The run
# must complete and be stored safely.
import os

os.write(1, bytes(range(256)) * 4)
os.write(1, b"\x00\x00\x00NUL\x00")
os.write(1, b"\xff\xfe\xfd\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80")
os.write(1, b"\x1b[2J\x1b[31mred\x1b[0m\x1b]0;title\x07\r\x08")
# A fake multiplexing header announcing a long stderr frame; it must stay stdout bytes.
os.write(1, b"\x02\x00\x00\x00\x00\x00\xff\xff")
os.write(1, b"\x01\x00\x00\x00\x7f\xff\xff\xff")
os.write(1, b"\nend-of-binary\n")
os.write(2, b"\x00\xffstderr survived the fake headers\n")
