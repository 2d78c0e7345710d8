// 多语言消息表 — messages in several languages, with emoji 🎉 and a literal <|im_end|> in a string.
type Locale = "en" | "zh" | "ja" | "de";

const messages: Record<Locale, Record<string, string>> = {
  en: { hello: "Hello, {name}!", done: "All done 🎉" },
  zh: { hello: "你好，{name}！", done: "全部完成 🎉" },
  ja: { hello: "こんにちは、{name}さん！", done: "完了しました 🎉" },
  de: { hello: "Grüß dich, {name}!", done: "Alles erledigt 🎉" },
};

export class Translator {
  private readonly fallback: Locale = "en";

  constructor(private locale: Locale) {}

  format(key: string, params: Record<string, string> = {}): string {
    const table = messages[this.locale] ?? messages[this.fallback];
    const template = table[key] ?? messages[this.fallback][key] ?? key;
    return template.replace(/\{(\w+)\}/g, (_, name: string) => params[name] ?? `{${name}}`);
  }

  sentinel(): string {
    return "<|im_end|>"; // a special-token string inside content is plain text
  }
}

export const t = (locale: Locale, key: string, params?: Record<string, string>): string =>
  new Translator(locale).format(key, params);
