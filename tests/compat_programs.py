"""One program per catalog language for the Judge0 and Piston client tests: prints its arguments
joined by spaces on one line, then copies its stdin."""

from __future__ import annotations

ARGS = ["x", "y z"]
STDIN = "hello\n"
EXPECTED = "x y z\nhello\n"

PROGRAMS: dict[str, str] = {
    "python": "import sys\nprint(' '.join(sys.argv[1:]))\nprint(sys.stdin.read(), end='')\n",
    "bash": 'echo "$@"\ncat\n',
    "c": (
        "#include <stdio.h>\nint main(int argc, char **argv) {\n"
        '    for (int i = 1; i < argc; i++) printf(i > 1 ? " %s" : "%s", argv[i]);\n'
        "    putchar('\\n');\n    int c;\n    while ((c = getchar()) != EOF) putchar(c);\n    return 0;\n}\n"
    ),
    "cpp": (
        "#include <iostream>\nint main(int argc, char **argv) {\n"
        '    for (int i = 1; i < argc; i++) std::cout << (i > 1 ? " " : "") << argv[i];\n'
        '    std::cout << "\\n" << std::cin.rdbuf();\n}\n'
    ),
    "java": (
        "public class Main {\n    public static void main(String[] args) throws Exception {\n"
        '        System.out.println(String.join(" ", args));\n'
        "        System.out.print(new String(System.in.readAllBytes()));\n    }\n}\n"
    ),
    "javascript": (
        'console.log(process.argv.slice(2).join(" "));\nprocess.stdout.write(require("fs").readFileSync(0, "utf8"));\n'
    ),
    "typescript": (
        'const fs = require("fs");\nconst args: string[] = process.argv.slice(2);\nconsole.log(args.join(" "));\n'
        'process.stdout.write(fs.readFileSync(0, "utf8"));\n'
    ),
    "go": (
        'package main\n\nimport (\n\t"fmt"\n\t"io"\n\t"os"\n\t"strings"\n)\n\n'
        'func main() {\n\tfmt.Println(strings.Join(os.Args[1:], " "))\n\tb, _ := io.ReadAll(os.Stdin)\n\tos.Stdout.Write(b)\n}\n'
    ),
    "rust": (
        "use std::io::Read;\nfn main() {\n    let args: Vec<String> = std::env::args().skip(1).collect();\n"
        '    println!("{}", args.join(" "));\n    let mut input = String::new();\n'
        '    std::io::stdin().read_to_string(&mut input).unwrap();\n    print!("{}", input);\n}\n'
    ),
    "ruby": 'puts ARGV.join(" ")\nprint STDIN.read\n',
    "php": '<?php\necho implode(" ", array_slice($argv, 1)), "\\n";\necho stream_get_contents(STDIN);\n',
    "lua": 'print(table.concat(arg, " "))\nio.write(io.read("a"))\n',
}
