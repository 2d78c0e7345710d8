// 直方图 (histogram) of UTF-8 code points — emoji like 😀 take four bytes.
#include <cstdint>
#include <iostream>
#include <map>
#include <string>

namespace text {

// Decode one UTF-8 code point starting at s[i]; advances i.
std::uint32_t next_code_point(const std::string& s, std::size_t& i) {
    const auto lead = static_cast<unsigned char>(s[i]);
    int extra = lead < 0x80 ? 0 : lead < 0xE0 ? 1 : lead < 0xF0 ? 2 : 3;
    std::uint32_t cp = extra == 0 ? lead : lead & (0x3F >> extra);
    for (int k = 0; k < extra && i + 1 < s.size(); ++k) {
        cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
    }
    ++i;
    return cp;
}

std::map<std::uint32_t, int> histogram(const std::string& s) {
    std::map<std::uint32_t, int> counts;
    for (std::size_t i = 0; i < s.size();) {
        ++counts[next_code_point(s, i)];
    }
    return counts;
}

}  // namespace text

int main() {
    auto counts = text::histogram("héllo 世界 😀😀");
    for (const auto& [cp, n] : counts) {
        std::cout << "U+" << std::hex << cp << std::dec << " x" << n << "\n";
    }
    return 0;
}
