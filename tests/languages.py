"""The same programs in every language of the catalog, for tests/test_every_language.py.

Each language has: hello (prints "hello, world"), echo (copies stdin to stdout), exit3 (exits 3),
runtime_error (fails with a message containing "boom"), loop (never ends), memory (grows without
bound, touching what it takes), flood (prints without end), fork (starts processes until refused,
says "fork refused", then waits); and, compiled ones, compile_error (does not compile) and
compile_bomb (makes the compiler take more than its limits allow).
A new language adds its entry here.
"""

from __future__ import annotations

C_FORK = """#include <stdio.h>
#include <unistd.h>
int main(void) {
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) { pause(); return 0; }
        if (pid < 0) { puts("fork refused"); fflush(stdout); for (;;) pause(); }
    }
}
"""

PROGRAMS: dict[str, dict[str, str]] = {
    "python": {
        "hello": 'print("hello, world")\n',
        "echo": "import sys\nsys.stdout.write(sys.stdin.read())\n",
        "exit3": "import sys\nsys.exit(3)\n",
        "runtime_error": 'raise RuntimeError("boom")\n',
        "loop": "while True:\n    pass\n",
        "memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 20))\n",
        "flood": 'while True:\n    print("A" * 4096)\n',
        "fork": (
            "import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n            time.sleep(100)\n"
            '            os._exit(0)\n    except OSError:\n        print("fork refused", flush=True)\n'
            "        time.sleep(100)\n"
        ),
    },
    "bash": {
        "hello": 'echo "hello, world"\n',
        "echo": "cat\n",
        "exit3": "exit 3\n",
        "runtime_error": "no_such_command_boom\n",
        "loop": "while :; do :; done\n",
        "memory": 'x=A; while :; do x="$x$x"; done\n',
        "flood": "while :; do echo AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; done\n",
        "fork": "while :; do sleep 100 & done\n",
    },
    "c": {
        "hello": '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }\n',
        "echo": (
            "#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c); return 0; }\n"
        ),
        "exit3": "int main(void) { return 3; }\n",
        "runtime_error": '#include <assert.h>\nint main(void) { assert(0 && "boom"); return 0; }\n',
        "loop": "int main(void) { volatile int x = 0; for (;;) x++; }\n",
        "memory": (
            "#include <stdlib.h>\n#include <string.h>\n"
            "int main(void) { for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); } }\n"
        ),
        "flood": '#include <stdio.h>\nint main(void) { for (;;) puts("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); }\n',
        "fork": C_FORK,
        "compile_error": "int main(void) { return boom; }\n",
        # Reads an endless file: the compiler's time or memory limit must stop it.
        "compile_bomb": '#include "/dev/zero"\nint main(void) { return 0; }\n',
    },
    "cpp": {
        "hello": '#include <iostream>\nint main() { std::cout << "hello, world" << std::endl; }\n',
        "echo": "#include <iostream>\nint main() { std::cout << std::cin.rdbuf(); }\n",
        "exit3": "int main() { return 3; }\n",
        "runtime_error": '#include <stdexcept>\nint main() { throw std::runtime_error("boom"); }\n',
        "loop": "int main() { volatile int x = 0; for (;;) x++; }\n",
        "memory": (
            "#include <vector>\n#include <cstring>\nint main() { std::vector<char*> v; "
            "for (;;) { char *p = new char[1 << 20]; std::memset(p, 1, 1 << 20); v.push_back(p); } }\n"
        ),
        "flood": '#include <cstdio>\nint main() { for (;;) std::puts("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); }\n',
        "fork": C_FORK,
        "compile_error": "int main() { return boom; }\n",
        # Recursive templates, each instantiation bigger than the last.
        "compile_bomb": (
            "template <int N> struct F { static const int v = F<N + 1>::v + F<N + 2>::v; };\n"
            "int main() { return F<0>::v; }\n"
        ),
    },
    "java": {
        # Not Main: the class run is the public one the source declares, in a file of its name.
        "hello": 'public class Solution { public static void main(String[] a) { System.out.println("hello, world"); } }\n',
        "echo": (
            "public class Main { public static void main(String[] a) throws Exception { "
            "System.in.transferTo(System.out); System.out.flush(); } }\n"
        ),
        "exit3": "public class Main { public static void main(String[] a) { System.exit(3); } }\n",
        "runtime_error": (
            'public class Main { public static void main(String[] a) { throw new IllegalStateException("boom"); } }\n'
        ),
        "loop": "public class Main { public static void main(String[] a) { long x = 0; while (true) x++; } }\n",
        "memory": (
            "import java.util.*;\npublic class Main { public static void main(String[] a) { "
            "List<byte[]> l = new ArrayList<>(); while (true) { byte[] b = new byte[1 << 20]; "
            "Arrays.fill(b, (byte) 1); l.add(b); } } }\n"
        ),
        "flood": (
            "public class Main { public static void main(String[] a) { "
            'while (true) System.out.println("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); } }\n'
        ),
        "fork": (
            "public class Main { public static void main(String[] a) throws Exception { "
            "try { while (true) new ProcessBuilder(\"sleep\", \"100\").start(); } "
            'catch (Throwable e) { System.out.println("fork refused"); } Thread.sleep(100000); } }\n'
        ),
        "compile_error": "public class Main { public static void main(String[] a) { int x = boom } }\n",
        # An expression nested far deeper than javac's stack allows.
        "compile_bomb": (
            "public class Main { public static void main(String[] a) { int x = "
            + "(" * 15000 + "1" + ")" * 15000 + "; } }\n"
        ),
    },
    "javascript": {
        "hello": 'console.log("hello, world");\n',
        "echo": 'process.stdout.write(require("fs").readFileSync(0));\n',
        "exit3": "process.exit(3);\n",
        "runtime_error": 'throw new Error("boom");\n',
        "loop": "for (;;) {}\n",
        "memory": "const l = []; for (;;) l.push(Buffer.alloc(1 << 20, 1));\n",
        "flood": 'for (;;) require("fs").writeSync(1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n");\n',
        "fork": (
            'const { spawn } = require("child_process");\n'
            "function more() { const c = spawn(\"sleep\", [\"100\"]);\n"
            '  c.on("error", () => { console.log("fork refused"); for (;;) {} });\n'
            '  c.on("spawn", more); }\nmore();\n'
        ),
    },
    "typescript": {
        "hello": 'const greeting: string = "hello, world";\nconsole.log(greeting);\n',
        "echo": 'const input: any = require("fs").readFileSync(0);\nprocess.stdout.write(input);\n',
        "exit3": "const code: number = 3;\nprocess.exit(code);\n",
        "runtime_error": 'function fail(): never { throw new Error("boom"); }\nfail();\n',
        "loop": "for (;;) {}\n",
        "memory": "const l: any[] = [];\nfor (;;) l.push(Buffer.alloc(1 << 20, 1));\n",
        "flood": 'for (;;) require("fs").writeSync(1, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n");\n',
        "fork": (
            'const { spawn } = require("child_process");\n'
            "function more(): void { const c = spawn(\"sleep\", [\"100\"]);\n"
            '  c.on("error", () => { console.log("fork refused"); for (;;) {} });\n'
            '  c.on("spawn", more); }\nmore();\n'
        ),
        "compile_error": "const n: number = boom;\n",
        # A reference to an endless file.
        "compile_bomb": '/// <reference path="/dev/zero" />\nconsole.log(1);\n',
    },
    "go": {
        "hello": 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello, world") }\n',
        "echo": 'package main\nimport ("io"; "os")\nfunc main() { io.Copy(os.Stdout, os.Stdin) }\n',
        "exit3": 'package main\nimport "os"\nfunc main() { os.Exit(3) }\n',
        "runtime_error": 'package main\nfunc main() { panic("boom") }\n',
        "loop": "package main\nfunc main() { x := 0; for { x++ } }\n",
        "memory": (
            "package main\nfunc main() { var l [][]byte; for { b := make([]byte, 1<<20); "
            "for i := range b { b[i] = 1 }; l = append(l, b) } }\n"
        ),
        "flood": 'package main\nimport "os"\nfunc main() { for { os.Stdout.WriteString("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n") } }\n',
        "fork": (
            'package main\nimport ("fmt"; "os/exec"; "time")\nfunc main() { for { '
            'if err := exec.Command("sleep", "100").Start(); err != nil { fmt.Println("fork refused"); '
            "time.Sleep(100 * time.Second) } } }\n"
        ),
        "compile_error": "package main\nfunc main() { return boom }\n",
        # A gigabyte of initialised data: a binary far larger than the compile stage may write.
        "compile_bomb": "package main\nvar big = [1 << 30]byte{1}\nfunc main() { println(big[0]) }\n",
    },
    "rust": {
        "hello": 'fn main() { println!("hello, world"); }\n',
        "echo": "use std::io;\nfn main() { io::copy(&mut io::stdin(), &mut io::stdout()).unwrap(); }\n",
        "exit3": "fn main() { std::process::exit(3); }\n",
        "runtime_error": 'fn main() { panic!("boom"); }\n',
        "loop": "fn main() { let mut x: u64 = 0; loop { x = x.wrapping_add(1); if x == u64::MAX { println!(\"{}\", x); } } }\n",
        "memory": "fn main() { let mut l = Vec::new(); loop { l.push(vec![1u8; 1 << 20]); } }\n",
        "flood": 'fn main() { loop { println!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); } }\n',
        "fork": (
            "use std::process::Command;\nfn main() { loop { if Command::new(\"sleep\").arg(\"100\").spawn().is_err() { "
            'println!("fork refused"); std::thread::sleep(std::time::Duration::from_secs(100)); } } }\n'
        ),
        "compile_error": "fn main() { let n: i32 = \"boom\"; }\n",
        # A gigabyte evaluated at compile time.
        "compile_bomb": "static BIG: [u8; 1 << 30] = [1; 1 << 30];\nfn main() { println!(\"{}\", BIG[7]); }\n",
    },
    "ruby": {
        "hello": 'puts "hello, world"\n',
        "echo": "$stdout.write($stdin.read)\n",
        "exit3": "exit 3\n",
        "runtime_error": 'raise "boom"\n',
        "loop": "x = 0\nloop { x += 1 }\n",
        "memory": 'l = []\nloop { l << ("a" * (1 << 20)) }\n',
        "flood": 'loop { puts "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }\n',
        "fork": (
            "loop do\n  begin\n    fork { sleep 100 }\n  rescue SystemCallError\n"
            '    puts "fork refused"\n    $stdout.flush\n    sleep 100\n  end\nend\n'
        ),
    },
    "php": {
        "hello": '<?php echo "hello, world\\n";\n',
        "echo": "<?php echo stream_get_contents(STDIN);\n",
        "exit3": "<?php exit(3);\n",
        "runtime_error": '<?php throw new Exception("boom");\n',
        "loop": "<?php $x = 0; while (true) { $x++; }\n",
        "memory": '<?php $l = []; while (true) { $l[] = str_repeat("a", 1 << 20); }\n',
        "flood": '<?php while (true) { echo "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\n"; }\n',
        "fork": (
            "<?php $kids = []; while (true) { $p = @proc_open(['sleep', '100'], [], $pipes); "
            'if ($p === false) { echo "fork refused\\n"; sleep(100); } $kids[] = $p; }\n'
        ),
    },
    "lua": {
        "hello": 'print("hello, world")\n',
        "echo": 'io.write(io.read("a"))\n',
        "exit3": "os.exit(3)\n",
        "runtime_error": 'error("boom")\n',
        "loop": "local x = 0\nwhile true do x = x + 1 end\n",
        "memory": 'local l = {}\nwhile true do l[#l + 1] = string.rep("a", 1 << 20) .. #l end\n',
        "flood": 'while true do print("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") end\n',
        "fork": (
            "local kids = {}\nwhile true do\n  local p = io.popen('sleep 100 2>/dev/null; echo x')\n"
            "  if not p then print('fork refused') io.stdout:flush() while true do end end\n"
            "  kids[#kids + 1] = p\nend\n"
        ),
    },
}
