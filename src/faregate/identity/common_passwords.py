"""Passwords too common to accept, compared in lower case.

The most used passwords of public breach corpora (the usual "top 200" lists), plus the longer
ones among them that pass a minimum length: a password of ten characters or more is still
refused when it is on this list.
"""

from __future__ import annotations

COMMON_PASSWORDS: frozenset[str] = frozenset("""
123456 123456789 12345678 password qwerty123 qwerty1 111111 12345 secret 123123
1234567890 1234567 000000 qwerty abc123 password1 iloveyou 11111111 dragon monkey
123321 654321 666666 121212 123qwe 1q2w3e4r 1q2w3e4r5t 1q2w3e 1qaz2wsx zaq12wsx
qwertyuiop qwertyuiop1 asdfghjkl asdfghjkl1 zxcvbnm zxcvbnm123 1qazxsw2 qazwsxedc
qazwsx password123 password12 password1234 passw0rd p@ssw0rd p@ssword p@ssw0rd123
letmein letmein123 welcome welcome1 welcome123 welcome2020 welcome2024 admin admin123
administrator adminadmin root toor login master master123 sunshine sunshine1 princess
princess1 football football1 baseball baseball1 basketball soccer hockey superman
batman trustno1 starwars starwars1 shadow shadow123 michael jennifer jordan23 charlie
hunter2 hello123 helloworld hello1234 freedom whatever qwerty12345 qwerty123456
1234qwer 123abc abcd1234 abcdef abcdefg abcdefgh abcdefghij abc12345 abc123456
aa123456 a123456 a1234567 a12345678 a123456789 q1w2e3r4 q1w2e3r4t5 q1w2e3r4t5y6
1q2w3e4r5t6y 123456789a 12345678910 1234567891 0123456789 0987654321 9876543210
987654321 87654321 123456a 123456abc 1234abcd 123654 147258369 159753 159357
741852963 789456123 789456 147258 1234554321 1122334455 112233 11223344 121212121
1111111111 0000000000 2222222222 5555555555 9999999999 7777777 88888888 99999999
iloveyou1 iloveyou2 loveyou lovely love123 mylove ilovegod jesus jesus123 blessed
changeme changeme123 changeit default guest guest123 test test123 testing
testing123 temp1234 temppass temporary passpass password! password01 passwordpassword
pass1234 pass12345 mypassword mypassword1 secret123 secretpassword letmeinplease
computer internet google youtube facebook linkedin microsoft samsung iphone apple
pokemon naruto minecraft fortnite liverpool chelsea arsenal manchester barcelona
dallas yankees lakers cowboys eagles ranger killer pepper ginger cookie cheese
chocolate butterfly flower summer winter autumn spring tigger daniel thomas andrew
matthew joshua nicole jessica ashley michelle superman1 spiderman ironman
qwe123 qwe12345 qweasd qweasdzxc qweasdzxc123 asd123 asdasd asdasd123 zxc123
zxcvbn zxcvbnm1 1a2b3c4d 1a2b3c4d5e a1b2c3d4 a1b2c3d4e5 aaaaaa aaaaaaaa
asdf1234 asdfasdf asdfghjk asdfghjkl123 azerty azertyuiop 1234asdf 12qwaszx
trustno1trustno1 donotguess nopassword noaccess openSesame opensesame
""".lower().split())
