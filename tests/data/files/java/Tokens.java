package org.example.text;

import java.util.ArrayList;
import java.util.List;

public class Tokens {
    enum Kind { WORD, NUMBER, SYMBOL }

    record Token(Kind kind, String text, int offset) {}

    public static List<Token> tokenize(String input) {
        List<Token> out = new ArrayList<>();
        int i = 0;
        while (i < input.length()) {
            char c = input.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
                continue;
            }
            int start = i;
            Kind kind;
            if (Character.isLetter(c)) {
                while (i < input.length() && Character.isLetterOrDigit(input.charAt(i))) i++;
                kind = Kind.WORD;
            } else if (Character.isDigit(c)) {
                while (i < input.length() && Character.isDigit(input.charAt(i))) i++;
                kind = Kind.NUMBER;
            } else {
                i++;
                kind = Kind.SYMBOL;
            }
            out.add(new Token(kind, input.substring(start, i), start));
        }
        return out;
    }

    public static void main(String[] args) {
        for (Token t : tokenize(args.length > 0 ? args[0] : "x1 = 42 + y;")) {
            System.out.println(t.kind() + " " + t.text() + " @" + t.offset());
        }
    }
}
