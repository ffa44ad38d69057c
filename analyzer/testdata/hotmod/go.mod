module example.com/hotmod

go 1.26.0
